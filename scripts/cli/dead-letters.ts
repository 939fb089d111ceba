// Progress dead letters, for operators:
//
//   node scripts/cli/dead-letters.ts list [--limit N] [--json]
//   node scripts/cli/dead-letters.ts redrive <id>… | --all
//   node scripts/cli/dead-letters.ts discard <id>… | --all
//
// Reads the deployment's Redis as the app does: UPSTASH_REDIS_REST_URL and
// UPSTASH_REDIS_REST_TOKEN, with REDIS_KEY_PREFIX (or the environment's default prefix, from
// APP_ENV and the rest of the environment rules). A thin shell over src/progress/dead-letters.ts.
import { fileURLToPath } from 'node:url'
import { type EnvSource, loadConfig } from '../../src/config/index.ts'
import { ProgressBuffer } from '../../src/progress/buffer.ts'
import {
  discardDeadLetters,
  listDeadLetters,
  redriveDeadLetters,
} from '../../src/progress/dead-letters.ts'
import { bufferOptions } from '../../src/progress/service.ts'
import { createRedisStore } from '../../src/redis.ts'

const USAGE = `usage: dead-letters list [--limit N] [--json]
       dead-letters redrive <id>… | --all
       dead-letters discard <id>… | --all`

/** Runs one command; returns the exit code (0 done, 1 failed, 2 usage). */
export async function runDeadLetters(
  args: readonly string[],
  env: EnvSource,
  print: (line: string) => void = (line) => console.log(line),
  printError: (line: string) => void = (line) => console.error(line),
): Promise<number> {
  const [command, ...rest] = args
  if (!command || !['list', 'redrive', 'discard'].includes(command)) {
    printError(USAGE)
    return 2
  }
  const config = loadConfig(env)
  if (!config.redis) {
    printError('dead-letters: set UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN')
    return 1
  }
  const t = config.tunables
  const redis = createRedisStore({
    config: config.redis,
    keyPrefix: config.redisKeyPrefix,
    timeoutMs: Math.max(t.redisTimeoutMs, 10_000),
  })
  const buffer = new ProgressBuffer(redis, bufferOptions(t))

  try {
    if (command === 'list') {
      const limitAt = rest.indexOf('--limit')
      const limit = limitAt >= 0 ? Number(rest[limitAt + 1]) : 100
      if (!Number.isInteger(limit) || limit < 1) {
        printError(USAGE)
        return 2
      }
      const { total, items } = await listDeadLetters(buffer, limit)
      if (rest.includes('--json')) {
        print(JSON.stringify({ total, items }, null, 2))
        return 0
      }
      for (const d of items) {
        const why = d.reason
          ? `${d.reason.kind}${d.reason.sqlstate ? ` ${d.reason.sqlstate}` : ''} at ${new Date(d.reason.at).toISOString()}`
          : 'unknown reason'
        // JSON quoting shows NUL, unpaired surrogates and other odd characters for what they are.
        const field = (name: string, value: string | undefined) =>
          value === undefined ? '' : ` ${name}=${JSON.stringify(value)}`
        print(
          `${d.id}  ${why}${field('agent', d.agentId)}${field('user', d.userId)}${field('task', d.taskId)}${field('key', d.idempotencyKey)}${field('batch', d.batchId)} bytes=${d.bytes}`,
        )
      }
      print(`${total} dead letter(s)${total > items.length ? `, ${items.length} shown` : ''}`)
      return 0
    }

    const all = rest.includes('--all')
    const ids = rest.filter((a) => !a.startsWith('--'))
    if (all === ids.length > 0) {
      printError(USAGE)
      return 2
    }
    if (command === 'redrive') {
      const r = await redriveDeadLetters(buffer, { all, ids })
      print(`re-driven: ${r.redriven.length}`)
      for (const id of r.notFound) print(`not a dead letter: ${id}`)
      for (const id of r.undecodable)
        print(`kept (cannot be decoded, re-driving would only bury it again): ${id}`)
      return r.notFound.length || r.undecodable.length ? 1 : 0
    }
    const r = await discardDeadLetters(buffer, { all, ids }, Date.now())
    print(`discarded: ${r.discarded.length}`)
    for (const id of r.notFound) print(`not a dead letter: ${id}`)
    return r.notFound.length ? 1 : 0
  } catch (err) {
    // Name and code only: an upstream's error text may quote what it was sent.
    const code = (err as { code?: unknown }).code
    printError(
      `dead-letters: ${command} failed (${err instanceof Error ? err.name : 'error'}${typeof code === 'string' ? ` ${code}` : ''})`,
    )
    return 1
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.exitCode = await runDeadLetters(process.argv.slice(2), process.env)
}
