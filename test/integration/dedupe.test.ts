// One dedupe truth across the stores, against the real ones: keys committed straight to
// Postgres reach Redis' dedupe (at once when Redis answers, else through the flush's sync),
// and until they do, buffered requests look them up in Postgres — one cached check per
// isolate deciding whether that is needed, not a lookup per request.
import { describe, expect, test } from 'vitest'
import { sql } from '../../src/db/client.ts'
import { acceptProgress } from '../../src/progress/accept.ts'
import { flushProgress } from '../../src/progress/flush.ts'
import type { BufferedUpdate } from '../../src/progress/model.ts'
import type { Services } from '../../src/services.ts'
import { integrationScenario, item } from './support.ts'

const sc = await integrationScenario()
const PATIENT = {
  BREAKER_CONSECUTIVE_FAILURES: '1000',
  BREAKER_FAILURE_RATE_PERCENT: '100',
  BREAKER_MINIMUM_CALLS: '100',
  BREAKER_WINDOW_SIZE: '100',
}
const pathOf = (i: number, field: string) => `updates.${i}.${field}`

/** Accepts `updates` as the route does, waiting for the work it hands to waitUntil. */
async function accept(services: Services, updates: BufferedUpdate[]) {
  const deferred: Promise<unknown>[] = []
  const batch = { id: updates[0]!.batchId, agentId: 'demo-agent' }
  const result = await acceptProgress(services, batch, updates, pathOf, {
    defer: (work) => void deferred.push(work.catch(() => {})),
  })
  await Promise.all(deferred)
  return result
}

async function synced(services: Services, batchId: string) {
  const rows = await services.db!.query<{ synced: boolean }>(
    sql`SELECT synced_at IS NOT NULL AS synced FROM progress_batches WHERE id = ${batchId}`,
  )
  return rows[0]?.synced
}

async function unsyncedBatches(services: Services): Promise<number> {
  const rows = await services.db!.query<{ n: number }>(
    sql`SELECT count(*)::int AS n FROM progress_batches WHERE via = 'direct' AND synced_at IS NULL`,
  )
  return rows[0]?.n ?? 0
}

describe.runIf(sc.hasRedis)('one dedupe truth', () => {
  test('Redis failing: committed directly, unsynced; re-sent through Redis it is a duplicate; the flush syncs it', async () => {
    const prefix = `t:${crypto.randomUUID().slice(0, 8)}:`
    const a = sc.services({ REDIS_KEY_PREFIX: prefix, REDIS_TIMEOUT_MS: '200', ...PATIENT })
    const batchId = crypto.randomUUID()
    const u = item({ batchId })
    await sc.redis.setFaults({ refuse: true })
    try {
      expect(await accept(a, [u])).toMatchObject({ status: 'committed', accepted: 1 })
    } finally {
      await sc.redis.clearFaults()
    }
    // Redis refused the copy too: the batch waits for the flush's sync.
    expect(await synced(a, batchId)).toBe(false)
    // Another isolate, cold: its check finds the unsynced batch and looks the key up.
    const b = sc.services({ REDIS_KEY_PREFIX: prefix, ISOLATE: 'b' })
    await sc.neon.resetStats()
    const again = { ...u, id: crypto.randomUUID(), batchId: crypto.randomUUID() }
    expect(await accept(b, [again])).toMatchObject({ status: 'queued', accepted: 0, duplicates: 1 })
    expect((await sc.neon.stats()).requests).toBe(2) // the check and the lookup
    // The flush copies the key into Redis and marks the batch synced.
    await flushProgress(a, {}, { drain: true })
    expect(await synced(a, batchId)).toBe(true)
    const idem = await a.redis!.client.get(
      a.progress.buffer!.idempotencyKey('demo-agent', u.idempotencyKey),
    )
    expect(idem).toBe(u.fingerprint)
    // A third isolate, cold: nothing unsynced, so no lookup — Redis alone knows the key.
    const c = sc.services({ REDIS_KEY_PREFIX: prefix, ISOLATE: 'c' })
    await sc.neon.resetStats()
    const third = { ...u, id: crypto.randomUUID(), batchId: crypto.randomUUID() }
    expect(await accept(c, [third])).toMatchObject({ accepted: 0, duplicates: 1 })
    expect((await sc.neon.stats()).requests).toBeLessThanOrEqual(1) // the check only
  })

  test('Redis only hiccuped: the direct batch is copied to Redis at once, nothing is left to look up', async () => {
    const prefix = `t:${crypto.randomUUID().slice(0, 8)}:`
    const a = sc.services({ REDIS_KEY_PREFIX: prefix })
    await accept(a, [item()]) // warm: the isolate's check is made
    // This one append times out (its outcome unknown); Redis answers again right after.
    const buffer = a.progress.buffer!
    const append = buffer.append.bind(buffer)
    buffer.append = async () => {
      buffer.append = append
      throw Object.assign(new Error('The operation was aborted due to timeout'), {
        name: 'TimeoutError',
      })
    }
    const batchId = crypto.randomUUID()
    const u = item({ batchId })
    const answer = await accept(a, [u])
    expect(answer).toMatchObject({ status: 'committed', accepted: 1 })
    expect(answer.batch_id).not.toBe(batchId) // a late append would keep its own batch
    expect(await synced(a, answer.batch_id)).toBe(true)
    expect(await a.redis!.client.get(buffer.idempotencyKey('demo-agent', u.idempotencyKey))).toBe(
      u.fingerprint,
    )
    expect(await unsyncedBatches(a)).toBe(0)
  })

  test('a key re-used for another update is refused in Postgres too, rolling back the request', async () => {
    const services = sc.services({ UPSTASH_REDIS_REST_URL: '', UPSTASH_REDIS_REST_TOKEN: '' })
    const u = item()
    expect(await accept(services, [u])).toMatchObject({ status: 'committed', accepted: 1 })
    const fresh = item()
    const reuse = { ...item(), idempotencyKey: u.idempotencyKey, batchId: fresh.batchId }
    await expect(
      accept(services, [{ ...fresh }, { ...reuse, batchId: fresh.batchId }]),
    ).rejects.toMatchObject({
      problem: {
        status: 422,
        code: 'idempotency_key_reused',
        errors: [{ path: 'updates.1.idempotency_key' }],
      },
    })
    const rows = await services.db!.query(
      sql`SELECT 1 FROM progress_events WHERE idempotency_key = ${fresh.idempotencyKey}`,
    )
    expect(rows).toEqual([])
  })
})
