// `npm run dev`: the API on embedded defaults, no accounts needed.
//
//  - PGlite persisted under .data/ (or LOCAL_POSTGRES_URL) behind the Neon HTTP stand-in,
//    migrated and seeded with the demo data;
//  - Redis through the Upstash REST stand-in if one answers on REDIS_URL, else none;
//  - .dev.vars created from .dev.vars.example with fresh random secrets if missing;
//  - the worker bundled with esbuild and served by workerd (Miniflare) on 127.0.0.1:8787
//    (PORT overrides), rebuilt on every change under src/.
// Ctrl-C stops everything it started.
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { parseEnv } from 'node:util'
import { startLocalStack } from '../src/local/stack.ts'
import { reachable } from '../test/support/services.ts'
import { startWorkerServer } from './worker-server.ts'

const root = new URL('..', import.meta.url)
const at = (path: string) => new URL(path, root).pathname

async function devVars(): Promise<Record<string, string>> {
  const path = at('.dev.vars')
  if (!existsSync(path)) {
    const example = await readFile(at('.dev.vars.example'), 'utf8')
    const filled = example.replace(/^([A-Z0-9_]+)=generate$/gm, (_, key: string) => {
      return `${key}=${randomBytes(32).toString('base64url')}`
    })
    await writeFile(path, filled, { mode: 0o600 })
    console.log('created .dev.vars with fresh random secrets')
  }
  return parseEnv(await readFile(path, 'utf8')) as Record<string, string>
}

async function main() {
  const port = Number(process.env.PORT ?? 8787)
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
  const vars = await devVars()
  await mkdir(at('.data'), { recursive: true })

  const hasRedis = await reachable(redisUrl)
  const stack = await startLocalStack({
    postgresUrl: process.env.LOCAL_POSTGRES_URL,
    pgliteDataDir: process.env.LOCAL_POSTGRES_URL ? undefined : at('.data/pglite'),
    redisUrl: hasRedis ? redisUrl : false,
    prepareDefaultSchema: true,
  })
  console.log(
    `database: ${stack.info.postgres === 'pglite' ? 'PGlite in .data/pglite' : 'PostgreSQL server'} behind the Neon HTTP stand-in at ${stack.neon.url}`,
  )
  console.log(
    hasRedis
      ? `redis: ${redisUrl} behind the Upstash REST stand-in at ${stack.info.upstashUrl}`
      : `redis: none answers on ${redisUrl}; running on per-isolate state (rate limits, revocations and buffers are not shared)`,
  )

  const bindings: Record<string, string> = {
    APP_ENV: 'development', // not in .dev.vars: see .dev.vars.example
    DATABASE_URL: stack.info.databaseUrl,
    NEON_FETCH_ENDPOINT: stack.info.neonFetchEndpoint,
    ...(stack.info.upstashUrl && stack.info.upstashToken
      ? {
          UPSTASH_REDIS_REST_URL: stack.info.upstashUrl,
          UPSTASH_REDIS_REST_TOKEN: stack.info.upstashToken,
        }
      : {}),
    ...vars, // a .dev.vars entry overrides the local stack's settings
  }

  const server = await startWorkerServer({
    bindings,
    outfile: at('.wrangler/dev/worker.mjs'),
    port,
    watch: true,
    onReload: () => console.log('rebuilt and reloaded'),
  })

  const base = server.url
  console.log(`
Agent API (development) on ${base}
  demo agent: demo-agent   (granted demo-user-1, demo-user-2)
  get a token:
    curl -s -X POST ${base}/api/v1/agent/token -H 'Content-Type: application/json' \\
      -d '{"agent_id":"demo-agent","agent_secret":"'"$(grep ^DEV_AGENT_SECRET= .dev.vars | cut -d= -f2-)"'"}'
  health: curl -s ${base}/health
`)

  let stopping = false
  const stop = async () => {
    if (stopping) return
    stopping = true
    console.log('stopping…')
    await server.close()
    await stack.close()
    process.exit(0)
  }
  // Miniflare installs signal handlers that exit at once; ours must run instead, so that
  // PGlite closes cleanly and its files under .data/ stay consistent.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.removeAllListeners(signal)
    process.on(signal, stop)
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
