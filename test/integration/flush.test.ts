// The buffer and the flush against the real engines (through the stand-ins): exactly-once
// effect under re-delivery, out-of-order arrival, failed writes, and the flush lease.
import { describe, expect, test } from 'vitest'
import { redisAvailable } from '../../local/engines.ts'
import { sql } from '../../src/db/client.ts'
import { runScheduledJobs } from '../../src/jobs.ts'
import { flushProgress } from '../../src/progress/flush.ts'
import type { BufferedUpdate } from '../../src/progress/model.ts'
import { writeFlushed } from '../../src/progress/writer.ts'
import { useNodeStack } from '../support/node-stack.ts'

const stack = useNodeStack()
// Buffer tests need Redis (in CI its absence fails the run; elsewhere they are skipped, visibly).
const hasRedis = await redisAvailable()
let n = 0

function item(over: Partial<BufferedUpdate> = {}): BufferedUpdate {
  n++
  return {
    id: crypto.randomUUID(),
    batchId: crypto.randomUUID(),
    agentId: 'demo-agent',
    idempotencyKey: `k-${n}-${Math.random()}`,
    userId: 'demo-user-1',
    taskId: `t-${n}`,
    status: 'in_progress',
    progress: 10,
    data: null,
    occurredAt: new Date(Date.now() - 60_000).toISOString(),
    receivedAt: Date.now(),
    ...over,
  }
}

async function count(services: ReturnType<ReturnType<typeof stack>['services']>, taskId: string) {
  const rows = await services.db!.query<{ n: number }>(
    sql`SELECT count(*)::int AS n FROM progress_events WHERE task_id = ${taskId}`,
  )
  return rows[0]?.n ?? 0
}

describe('progress buffer and flush', () => {
  test.runIf(hasRedis)(
    'a flush killed after the write and before the ack re-delivers, and writes nothing twice',
    async () => {
      const { services: make } = stack()
      let now = Date.now()
      const services = make({ PROGRESS_CLAIM_TIMEOUT_MS: '5000' }, { clock: { now: () => now } })
      const buffer = services.progress.buffer!
      const u = item()
      expect(await buffer.append({ id: u.batchId, agentId: u.agentId }, [u], now)).toMatchObject({
        ok: true,
        accepted: 1,
      })

      // A flush claims and writes... then dies before acknowledging.
      const claimed = await buffer.claim(now, 100)
      expect(claimed.items.map((c) => c.id)).toEqual([u.id])
      await writeFlushed(services.db!, claimed.items, [], now, {})
      expect((await buffer.claim(now, 100)).items).toEqual([]) // invisible while the claim is alive

      // The claim expires: the next flush re-delivers, writes again (a no-op), and acks.
      now += 6000
      const report = await flushProgress(services, {}, { drain: true })
      expect(report).toMatchObject({ flushed: 1, remaining: 0 })
      expect(await count(services, u.taskId)).toBe(1)
      const batch = await buffer.batch(u.batchId)
      expect(batch).toMatchObject({ outstanding: 0, accepted: 1 })
      expect(batch?.committedAt).not.toBeNull()
      // Postgres records the batch with the same committed_at Redis reports.
      const rows = await services.db!.query<{ committed_at: Date }>(
        sql`SELECT committed_at FROM progress_batches WHERE id = ${u.batchId} AND via = 'buffer'`,
      )
      expect(rows.map((r) => new Date(r.committed_at).getTime())).toEqual([batch?.committedAt])
    },
  )

  test.runIf(hasRedis)('a failed write puts its items back for the next flush', async () => {
    const { services: make, resources, stack: local } = stack()
    const services = make({
      BREAKER_CONSECUTIVE_FAILURES: '1000',
      BREAKER_MINIMUM_CALLS: '20',
      BREAKER_WINDOW_SIZE: '20',
      BREAKER_FAILURE_RATE_PERCENT: '100',
    })
    const u = item()
    await services.progress.buffer!.append({ id: u.batchId, agentId: u.agentId }, [u], Date.now())
    const proxy = await fetch(`${local.info.controlUrl}/scenarios/${resources.id}/faults/neon`, {
      method: 'PUT',
      body: JSON.stringify({ errorRate: 1 }),
    })
    expect(proxy.status).toBe(204)
    try {
      const failed = await flushProgress(services, {}, { drain: true })
      expect(failed.flushed).toBe(0)
      expect(failed.error).toBeDefined()
      expect(failed.remaining).toBeGreaterThanOrEqual(1)
    } finally {
      await fetch(`${local.info.controlUrl}/scenarios/${resources.id}/faults/neon`, {
        method: 'DELETE',
      })
    }
    const retried = await flushProgress(services, {}, { drain: true })
    expect(retried.flushed).toBeGreaterThanOrEqual(1)
    expect(await count(services, u.taskId)).toBe(1)
  })

  test.runIf(hasRedis)(
    'a flush whose ack fails after the commit still drops the changed user’s cached context',
    async () => {
      const { services: make } = stack()
      const services = make({ REDIS_KEY_PREFIX: `t:${crypto.randomUUID().slice(0, 8)}:` })
      const buffer = services.progress.buffer!
      const cache = services.caches.userContext
      await cache.swr('demo-user-1', async () => ({ members: '"cached":true', etag: '"x"' }))
      expect(cache.fresh('demo-user-1')).toBeDefined()
      const u = item()
      await buffer.append({ id: u.batchId, agentId: u.agentId }, [u], Date.now())
      // Redis fails between the Neon commit and the ack.
      buffer.ack = async () => {
        throw new Error('redis: connection refused')
      }
      const report = await flushProgress(services, {}, { drain: true })
      expect(report.error).toBeDefined()
      expect(await count(services, u.taskId)).toBe(1)
      expect(cache.fresh('demo-user-1')).toBeUndefined()
    },
  )

  test.runIf(hasRedis)(
    'the scheduled run drains the buffer and hands what it leaves running to the platform',
    async () => {
      const { services: make } = stack()
      const services = make({ REDIS_KEY_PREFIX: `t:${crypto.randomUUID().slice(0, 8)}:` })
      const u = item({ userId: 'demo-user-2' })
      await services.progress.buffer!.append({ id: u.batchId, agentId: u.agentId }, [u], Date.now())
      const deferred: Promise<unknown>[] = []
      const reports = await runScheduledJobs(
        services,
        { cron: '* * * * *', scheduledTime: Date.now() },
        { defer: (work) => deferred.push(work) },
      )
      expect(reports).toMatchObject([{ job: 'progress-flush', ok: true, result: { flushed: 1 } }])
      expect(await count(services, u.taskId)).toBe(1)
      // The other isolates learn of the change through Redis: that publish outlives the run.
      expect(deferred.length).toBeGreaterThan(0)
      await Promise.all(deferred)
      const redis = services.redis!
      const listed = await redis.run('test', (r) =>
        r.zrange<string[]>(redis.key('context', 'invalidations'), 0, -1),
      )
      expect(listed).toContain('demo-user-2')
    },
  )

  test.runIf(hasRedis)(
    'a threshold flush claims only when a group is full or the oldest item is old enough',
    async () => {
      const { services: make } = stack()
      let now = Date.now()
      const services = make(
        {
          REDIS_KEY_PREFIX: `t:${crypto.randomUUID().slice(0, 8)}:`,
          PROGRESS_BATCH_DELAY_MS: '5000',
        },
        { clock: { now: () => now } },
      )
      const buffer = services.progress.buffer!
      const taskId = `due-${Math.random()}`
      const nine = Array.from({ length: 9 }, () => item({ taskId }))
      await buffer.append({ id: crypto.randomUUID(), agentId: 'demo-agent' }, nine, now)
      expect(await flushProgress(services)).toMatchObject({ flushed: 0, remaining: 9 })
      // The tenth update of the group makes it due.
      await buffer.append(
        { id: crypto.randomUUID(), agentId: 'demo-agent' },
        [item({ taskId })],
        now,
      )
      expect(await flushProgress(services)).toMatchObject({ flushed: 10, remaining: 0 })
      // A lone update becomes due with age.
      await buffer.append({ id: crypto.randomUUID(), agentId: 'demo-agent' }, [item()], now)
      expect(await flushProgress(services)).toMatchObject({ flushed: 0, remaining: 1 })
      now += 5000
      expect(await flushProgress(services)).toMatchObject({ flushed: 1, remaining: 0 })
    },
  )

  test.runIf(hasRedis)(
    'one flush at a time: a second flush while the lease is held does nothing',
    async () => {
      const { services: make } = stack()
      const services = make()
      const buffer = services.progress.buffer!
      expect(await buffer.acquireLease('someone-else', 10_000)).toBe(true)
      try {
        expect(await flushProgress(services)).toMatchObject({ flushed: 0, skipped: 'lease_held' })
      } finally {
        await buffer.releaseLease('someone-else')
      }
    },
  )

  test.runIf(hasRedis)(
    'the lease is one across isolates: held here, another isolate is told so by Redis',
    async () => {
      const { services: make } = stack()
      const env = { REDIS_KEY_PREFIX: `t:${crypto.randomUUID().slice(0, 8)}:` }
      const here = make(env).progress.buffer!
      const other = make(env)
      expect(await here.acquireLease('here', 10_000)).toBe(true)
      try {
        // This isolate knows it holds it (no round trip); the other one asks Redis.
        expect(await here.acquireLease('again', 10_000)).toBe(false)
        expect(await flushProgress(other)).toMatchObject({ flushed: 0, skipped: 'lease_held' })
      } finally {
        await here.releaseLease('here')
      }
      expect(await other.progress.buffer!.acquireLease('other', 10_000)).toBe(true)
      await other.progress.buffer!.releaseLease('other')
    },
  )

  test.runIf(hasRedis)(
    'the lease under a burst: 60 flush triggers at once from two isolates, exactly one holds it, twice over',
    async () => {
      const { services: make } = stack()
      const env = { REDIS_KEY_PREFIX: `t:${crypto.randomUUID().slice(0, 8)}:` }
      const isolates = [make(env).progress.buffer!, make(env).progress.buffer!]
      for (const round of [1, 2]) {
        const tokens = Array.from({ length: 60 }, (_, i) => `r${round}-${i}`)
        const won = await Promise.all(
          tokens.map((token, i) => isolates[i % 2]!.acquireLease(token, 10_000)),
        )
        const winners = tokens.filter((_, i) => won[i])
        expect(winners).toHaveLength(1)
        const winner = tokens.indexOf(winners[0]!)
        await isolates[winner % 2]!.releaseLease(winners[0]!)
      }
    },
  )

  test.runIf(hasRedis)(
    'the same key in two requests is accepted once; the depth bound refuses whole requests',
    async () => {
      const { services: make } = stack()
      const services = make({
        PROGRESS_BUFFER_MAX_DEPTH: '100',
        REDIS_KEY_PREFIX: `t:${crypto.randomUUID().slice(0, 8)}:`,
      })
      const buffer = services.progress.buffer!
      const key = `same-${Math.random()}`
      const a = await buffer.append(
        { id: crypto.randomUUID(), agentId: 'demo-agent' },
        [item({ idempotencyKey: key })],
        Date.now(),
      )
      const b = await buffer.append(
        { id: crypto.randomUUID(), agentId: 'demo-agent' },
        [item({ idempotencyKey: key }), item()],
        Date.now(),
      )
      expect(a).toMatchObject({ accepted: 1, duplicates: 0 })
      expect(b).toMatchObject({ accepted: 1, duplicates: 1 })
      const full = await buffer.append(
        { id: crypto.randomUUID(), agentId: 'demo-agent' },
        Array.from({ length: 99 }, () => item()),
        Date.now(),
      )
      expect(full.ok).toBe(false) // 2 + 99 > 100: all refused, none stored
      expect((await buffer.stats()).ready).toBe(2)
    },
  )
})
