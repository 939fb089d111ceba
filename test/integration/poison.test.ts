// Poison isolation and dead letters against the real stores: a flush refused with a data error
// bisects its claim, commits everything else and dead-letters only the refused items; their
// batches stay queued until an operator re-drives (→ committed once written) or discards
// (→ committed, counting what was discarded). The operator CLI, spawned as an operator would.
import { spawn } from 'node:child_process'
import { describe, expect, test } from 'vitest'
import { sql } from '../../src/db/client.ts'
import { discardDeadLetters } from '../../src/progress/dead-letters.ts'
import { flushProgress } from '../../src/progress/flush.ts'
import type { BufferedUpdate } from '../../src/progress/model.ts'
import { batchStatus } from '../../src/progress/status.ts'
import { writeDirect } from '../../src/progress/writer.ts'
import type { Services } from '../../src/services.ts'
import { integrationScenario, item } from './support.ts'

const sc = await integrationScenario()
const admin = sc.services()
// Postgres refuses (SQLSTATE 22023) any event of a task named poison-… while this exists.
await admin.db!.query({
  text: `CREATE FUNCTION poison_guard() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'poisoned update' USING ERRCODE = '22023'; END $$`,
  params: [],
})
const guard = (on: boolean) =>
  admin.db!.query({
    text: on
      ? `CREATE TRIGGER poison_guard BEFORE INSERT ON progress_events FOR EACH ROW
           WHEN (NEW.task_id LIKE 'poison-%') EXECUTE FUNCTION poison_guard()`
      : 'DROP TRIGGER IF EXISTS poison_guard ON progress_events',
    params: [],
  })
await guard(true)

/** The services' log lines: dead-lettering logs an error, which the tests read, not print. */
const logged: string[] = []
const logSink = (line: string) => void logged.push(line)

const fresh = () =>
  sc.services({ REDIS_KEY_PREFIX: `t:${crypto.randomUUID().slice(0, 8)}:` }, { logSink })

async function append(services: Services, updates: BufferedUpdate[]) {
  const byBatch = new Map<string, BufferedUpdate[]>()
  for (const u of updates) byBatch.set(u.batchId, [...(byBatch.get(u.batchId) ?? []), u])
  for (const [id, list] of byBatch) {
    const result = await services.progress.buffer!.append(
      { id, agentId: 'demo-agent' },
      list,
      Date.now(),
    )
    expect(result).toMatchObject({ ok: true, accepted: list.length })
  }
}

async function recorded(services: Services, batchId: string) {
  const rows = await services.db!.query<{ committed_at: Date; discarded: number; via: string }>(
    sql`SELECT committed_at, discarded, via FROM progress_batches WHERE id = ${batchId}`,
  )
  return rows[0]
}

async function eventCount(services: Services, tasks: string[]) {
  const rows = await services.db!.query<{ n: number }>(
    sql`SELECT count(*)::int AS n FROM progress_events WHERE task_id = ANY(${tasks}::text[])`,
  )
  return rows[0]?.n ?? 0
}

describe.runIf(sc.hasRedis)('poison isolation', () => {
  test('3 refused among 60: the rest commit, the 3 are dead letters, in few transactions', async () => {
    const services = fresh()
    const batches = Array.from({ length: 6 }, () => crypto.randomUUID())
    const updates = Array.from({ length: 60 }, (_, i) =>
      item({
        batchId: batches[i % 6]!,
        taskId:
          i % 20 === 7 ? `poison-${i}-${crypto.randomUUID()}` : `ok-${i}-${crypto.randomUUID()}`,
      }),
    )
    await append(services, updates)
    await sc.neon.resetStats()
    const report = await flushProgress(services, {}, { drain: true })
    const neonRequests = (await sc.neon.stats()).requests
    expect(report).toMatchObject({ flushed: 57, buried: 3, remaining: 0, deadLetters: 3 })
    const buried = logged.map((line) => JSON.parse(line) as Record<string, unknown>)
    expect(buried).toContainEqual(
      expect.objectContaining({
        level: 'error',
        msg: 'progress updates moved to the dead letters',
        buried: 3,
      }),
    )
    // 1 whole write, then the bisection (≤ 2 per level per refused item), then the batch records.
    expect(neonRequests).toBeLessThanOrEqual(1 + 2 * 3 * Math.ceil(Math.log2(60)) + 1)
    const poisoned = updates.filter((u) => u.taskId.startsWith('poison-'))
    const good = updates.filter((u) => !u.taskId.startsWith('poison-'))
    expect(
      await eventCount(
        services,
        good.map((u) => u.taskId),
      ),
    ).toBe(57)
    const dead = await services.progress.buffer!.deadLetters()
    expect(dead.items.map((d) => d.id).sort()).toEqual(poisoned.map((u) => u.id).sort())
    for (const d of dead.items) {
      expect(d.reason).toMatchObject({ kind: 'data_error', sqlstate: '22023' })
    }
    // Batches with a dead letter stay queued; the others are recorded as committed.
    const hit = new Set(poisoned.map((u) => u.batchId))
    for (const b of batches) {
      const status = await services.progress.buffer!.batch(b)
      if (hit.has(b)) {
        expect(status).toMatchObject({ committedAt: null, deadLetters: 1 })
        expect(await recorded(services, b)).toBeUndefined()
      } else {
        const row = await recorded(services, b)
        expect(row).toMatchObject({ via: 'buffer', discarded: 0 })
        expect(status?.committedAt).toBe(new Date(row!.committed_at).getTime())
      }
    }
  })

  test('re-driven after the cause is fixed: written, and the batch is committed once', async () => {
    const services = fresh()
    const batch = crypto.randomUUID()
    const good = item({ batchId: batch })
    const bad = item({ batchId: batch, taskId: `poison-redrive-${crypto.randomUUID()}` })
    await append(services, [good, bad])
    expect(await flushProgress(services, {}, { drain: true })).toMatchObject({
      buried: 1,
      flushed: 1,
    })
    expect(await recorded(services, batch)).toBeUndefined()
    await guard(false)
    try {
      expect([...(await services.progress.buffer!.redrive([bad.id]))]).toEqual([
        [bad.id, 'redriven'],
      ])
      expect(await flushProgress(services, {}, { drain: true })).toMatchObject({
        flushed: 1,
        buried: 0,
        deadLetters: 0,
      })
    } finally {
      await guard(true)
    }
    expect(await eventCount(services, [good.taskId, bad.taskId])).toBe(2)
    const row = await recorded(services, batch)
    expect(row).toMatchObject({ via: 'buffer' })
    expect((await services.progress.buffer!.batch(batch))?.committedAt).toBe(
      new Date(row!.committed_at).getTime(),
    )
  })

  test('a batch settled by discarding its dead letter is recorded in Postgres: its status outlives Redis (F11)', async () => {
    const services = fresh()
    const buffer = services.progress.buffer!
    const good = item()
    const bad = item({ batchId: good.batchId, taskId: `poison-${crypto.randomUUID()}` })
    await append(services, [good, bad])
    expect(await flushProgress(services, {}, { drain: true })).toMatchObject({ buried: 1 })
    expect(await recorded(services, good.batchId)).toBeUndefined() // queued: a dead letter
    const discardedAt = Date.now()
    await discardDeadLetters(buffer, { ids: [bad.id] }, discardedAt)
    const inRedis = await buffer.batch(good.batchId)
    expect(inRedis).toMatchObject({ committedAt: discardedAt, discarded: 1 })
    // The scheduled flush records it, with the same committed_at.
    await flushProgress(services, {}, { drain: true })
    const row = await recorded(services, good.batchId)
    expect(row).toMatchObject({ discarded: 1, via: 'buffer' })
    expect(new Date(row!.committed_at).getTime()).toBe(discardedAt)
    // A week later Redis has forgotten the batch; Postgres still answers, unchanged.
    await services.redis!.client.del(buffer.batchKey(good.batchId))
    expect(await batchStatus(services, 'demo-agent', good.batchId, {})).toEqual({
      batch_id: good.batchId,
      status: 'committed',
      accepted: 2,
      committed_at: new Date(discardedAt).toISOString(),
      discarded: 1,
    })
    expect(await buffer.unrecordedBatches(100)).toEqual([])
  })

  test('a key recorded for another update meanwhile: both updates are events, nothing is a dead letter', async () => {
    const services = fresh()
    const u = item()
    await append(services, [u])
    // Committed directly (Redis unreachable for that request) with different content: the
    // request could not know the buffered key, so both were answered with a 202.
    const other = { ...item(), idempotencyKey: u.idempotencyKey, taskId: u.taskId, progress: 99 }
    await writeDirect(
      services.db!,
      { id: other.batchId, agentId: 'demo-agent' },
      [other],
      Date.now(),
      {},
      services.config.tunables.progressDedupeTtlMs,
    )
    const report = await flushProgress(services, {}, { drain: true })
    expect(report).toMatchObject({ flushed: 1, buried: 0, deadLetters: 0 })
    const rows = await services.db!.query<{ progress: number; fingerprint: string }>(
      sql`SELECT progress, fingerprint FROM progress_events
          WHERE agent_id = 'demo-agent' AND idempotency_key = ${u.idempotencyKey}`,
    )
    expect(rows.map((r) => [r.progress, r.fingerprint]).sort()).toEqual(
      [
        [u.progress, u.fingerprint],
        [99, other.fingerprint],
      ].sort(),
    )
    expect(await services.progress.buffer!.batch(u.batchId)).toMatchObject({ deadLetters: 0 })
    expect((await services.progress.buffer!.batch(u.batchId))?.committedAt).not.toBeNull()
  })

  test('an outage while isolating: what is left goes back to the buffer, nothing is lost', async () => {
    const services = sc.services(
      {
        REDIS_KEY_PREFIX: `t:${crypto.randomUUID().slice(0, 8)}:`,
        BREAKER_CONSECUTIVE_FAILURES: '1000',
        BREAKER_MINIMUM_CALLS: '100',
        BREAKER_WINDOW_SIZE: '100',
        BREAKER_FAILURE_RATE_PERCENT: '100',
      },
      { logSink },
    )
    const updates = Array.from({ length: 8 }, (_, i) =>
      item({
        taskId: i === 3 ? `poison-outage-${crypto.randomUUID()}` : `ok-${crypto.randomUUID()}`,
      }),
    )
    await append(services, updates)
    // The whole write is refused (data error), then the database drops out.
    let writes = 0
    const db = services.db!
    const original = db.transaction.bind(db)
    db.transaction = async (statements, call) => {
      if (++writes === 2) await sc.neon.setFaults({ errorRate: 1 })
      return original(statements, call)
    }
    try {
      const report = await flushProgress(services, {}, { drain: true })
      expect(report.buried).toBe(0)
      expect(report.error).toBeDefined()
    } finally {
      await sc.neon.clearFaults()
      db.transaction = original
    }
    const next = await flushProgress(services, {}, { drain: true })
    expect(next).toMatchObject({ flushed: 7, buried: 1, remaining: 0 })
    expect(
      await eventCount(
        services,
        updates.map((u) => u.taskId),
      ),
    ).toBe(7)
  })
})

/** Runs the operator CLI as an operator would, against this scenario's Redis. */
function cli(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['scripts/cli/dead-letters.ts', ...args], {
      env: { PATH: process.env.PATH ?? '', ...env },
      cwd: new URL('../..', import.meta.url).pathname,
    })
    let out = ''
    let err = ''
    child.stdout.on('data', (chunk) => {
      out += chunk
    })
    child.stderr.on('data', (chunk) => {
      err += chunk
    })
    child.on('error', reject)
    child.on('close', (code) => resolve({ code: code ?? -1, out, err }))
  })
}

describe.runIf(sc.hasRedis)('the dead-letters CLI', () => {
  test('list, redrive and discard, against the deployment’s Redis', {
    timeout: 60_000,
  }, async () => {
    const prefix = `t:${crypto.randomUUID().slice(0, 8)}:`
    const services = sc.services({ REDIS_KEY_PREFIX: prefix }, { logSink })
    const batch = crypto.randomUUID()
    const a = item({ batchId: batch, taskId: `poison-cli-a-${crypto.randomUUID()}` })
    const b = item({ batchId: batch, taskId: `poison-cli-b\u0001${crypto.randomUUID()}` })
    await append(services, [a, b])
    expect(await flushProgress(services, {}, { drain: true })).toMatchObject({ buried: 2 })
    const env = {
      APP_ENV: 'development',
      UPSTASH_REDIS_REST_URL: sc.resources.upstashUrl!,
      UPSTASH_REDIS_REST_TOKEN: sc.resources.upstashToken!,
      REDIS_KEY_PREFIX: prefix,
    }

    const list = await cli(['list'], env)
    expect(list.code).toBe(0)
    expect(list.out).toContain(`${a.id}  data_error 22023`)
    expect(list.out).toContain(JSON.stringify(b.taskId)) // odd characters shown escaped
    expect(list.out.trim().split('\n').at(-1)).toBe('2 dead letter(s)')
    const json = JSON.parse((await cli(['list', '--json'], env)).out)
    expect(json.total).toBe(2)

    expect((await cli(['redrive'], env)).code).toBe(2) // says what it needs
    const unknown = await cli(['discard', 'nope'], env)
    expect(unknown).toMatchObject({ code: 1 })
    expect(unknown.out).toContain('not a dead letter: nope')

    const redrive = await cli(['redrive', a.id], env)
    expect(redrive).toMatchObject({ code: 0 })
    expect(redrive.out).toContain('re-driven: 1')
    expect((await services.progress.buffer!.stats()).ready).toBe(1)

    const discard = await cli(['discard', '--all'], env)
    expect(discard.out).toContain('discarded: 1')
    expect((await services.progress.buffer!.stats()).deadLetters).toBe(0)
    // a is back in the buffer (poisoned still: it is buried again); b is gone for good.
    expect(await flushProgress(services, {}, { drain: true })).toMatchObject({ buried: 1 })
    expect((await cli(['discard', '--all'], env)).out).toContain('discarded: 1')
    expect(await services.progress.buffer!.batch(batch)).toMatchObject({
      committedAt: expect.any(Number),
      discarded: 2,
      deadLetters: 0,
    })
    // Without Redis configured it says so, and fails.
    const missing = await cli(['list'], { APP_ENV: 'development' })
    expect(missing.code).toBe(1)
    expect(missing.err).toContain('UPSTASH_REDIS_REST_URL')
  })
})
