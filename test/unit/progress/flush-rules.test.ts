// The flush's rules, with no store at all: its dependencies are named (ProgressDeps), so a
// fake buffer and database stand in and each path can be made to happen. What the stores do
// with real data is the integration tests' (test/integration/flush.test.ts).
import { describe, expect, test } from 'vitest'
import { loadConfig } from '../../../src/config/index.ts'
import type { Database } from '../../../src/db/client.ts'
import { EventBus } from '../../../src/kernel/events.ts'
import { createLogger } from '../../../src/kernel/log.ts'
import type { BufferStats, Claim, ProgressBuffer } from '../../../src/progress/buffer.ts'
import { DirectCommits } from '../../../src/progress/dedupe.ts'
import { flushProgress } from '../../../src/progress/flush.ts'
import type { BufferedUpdate } from '../../../src/progress/model.ts'
import { BufferedKeys, type ProgressDeps } from '../../../src/progress/service.ts'

const NOW = Date.parse('2026-11-26T09:00:00Z')

function update(n: number): BufferedUpdate {
  return {
    id: `item-${n}`,
    batchId: 'batch-1',
    agentId: 'agent',
    idempotencyKey: `key-${n}`,
    userId: 'user',
    taskId: `task-${n}`,
    status: 'in_progress',
    progress: 10,
    data: null,
    occurredAt: new Date(NOW - 1000).toISOString(),
    receivedAt: NOW - 1000,
  }
}

/** A buffer whose answers a test sets; it records what the flush did to it. */
function fakeBuffer(options: {
  stats?: BufferStats | Error
  lease?: boolean | Error
  claims?: BufferedUpdate[][]
}) {
  const calls: string[] = []
  const claims = [...(options.claims ?? [])]
  const buffer = {
    async stats() {
      calls.push('stats')
      if (options.stats instanceof Error) throw options.stats
      return options.stats ?? { ready: 0, processing: 0, oldestAt: null, deadLetters: 0 }
    },
    async acquireLease() {
      calls.push('lease')
      if (options.lease instanceof Error) throw options.lease
      return options.lease ?? true
    },
    async releaseLease() {
      calls.push('release')
    },
    async claim(): Promise<Claim> {
      calls.push('claim')
      return { items: claims.shift() ?? [], batches: new Map(), buried: 0 }
    },
    async bury(refused: unknown[]) {
      calls.push(`bury:${refused.length}`)
      return refused.length
    },
    async ack(items: unknown[]) {
      calls.push(`ack:${items.length}`)
    },
    async nack(items: unknown[]) {
      calls.push(`nack:${items.length}`)
    },
  }
  return { buffer: buffer as unknown as ProgressBuffer, calls }
}

/** A database that answers every read with no rows and fails every transaction with `err`. */
function fakeDatabase(err: Error): Database {
  return {
    query: async () => [],
    transaction: async () => {
      throw err
    },
  }
}

function deps(over: { buffer?: ProgressBuffer; db?: Database; neonOpen?: boolean }) {
  const events = new EventBus()
  const seen: unknown[] = []
  events.on((e) => seen.push(e))
  const config = loadConfig({ APP_ENV: 'development' })
  const clock = { now: () => NOW }
  const d: ProgressDeps = {
    progress: {
      buffer: over.buffer,
      directCommits: new DirectCommits({
        db: over.db,
        now: clock.now,
        ttlMs: 1000,
        windowMs: 60_000,
        timeoutMs: 100,
      }),
      buffered: new BufferedKeys(60_000),
      invalidations: undefined as never,
      invalidate: () => {},
    },
    db: over.db,
    clock,
    config,
    breakers: { get: (name) => ({ isOpen: () => name === 'neon' && over.neonOpen === true }) },
    log: createLogger({ level: 'error', sink: () => {} }),
    events,
  }
  return { deps: d, seen }
}

describe('flushProgress without stores', () => {
  test('no buffer: nothing to flush, nothing held', async () => {
    expect(await flushProgress(deps({}).deps)).toEqual({
      flushed: 0,
      buried: 0,
      rounds: 0,
      remaining: 0,
      deadLetters: 0,
      skipped: 'no_buffer',
    })
  })

  test('no database: skipped, with what the buffer holds', async () => {
    const { buffer } = fakeBuffer({
      stats: { ready: 3, processing: 1, oldestAt: NOW - 5000, deadLetters: 2 },
    })
    expect(await flushProgress(deps({ buffer }).deps)).toMatchObject({
      skipped: 'no_database',
      remaining: 4,
      deadLetters: 2,
    })
  })

  test('an open database circuit: skipped without a lease', async () => {
    const { buffer, calls } = fakeBuffer({})
    const db = fakeDatabase(new Error('unused'))
    expect(await flushProgress(deps({ buffer, db, neonOpen: true }).deps)).toMatchObject({
      skipped: 'circuit_open',
    })
    expect(calls).not.toContain('lease')
  })

  test('Redis down: buffer_unavailable, and what it holds is unknown (-1, answered as null)', async () => {
    const { buffer } = fakeBuffer({ lease: new Error('ECONNREFUSED') })
    const db = fakeDatabase(new Error('unused'))
    expect(await flushProgress(deps({ buffer, db }).deps)).toEqual({
      flushed: 0,
      buried: 0,
      rounds: 0,
      remaining: -1,
      deadLetters: -1,
      skipped: 'buffer_unavailable',
    })
  })

  test('another flush holds the lease: skipped; counts it cannot read are -1', async () => {
    const { buffer } = fakeBuffer({ lease: false, stats: new Error('timeout') })
    const db = fakeDatabase(new Error('unused'))
    expect(await flushProgress(deps({ buffer, db }).deps)).toMatchObject({
      skipped: 'lease_held',
      remaining: -1,
      deadLetters: -1,
    })
  })

  test('a flush a request triggered (counts: false) makes no round trip to count', async () => {
    const { buffer, calls } = fakeBuffer({ lease: false })
    const db = fakeDatabase(new Error('unused'))
    expect(await flushProgress(deps({ buffer, db }).deps, {}, { counts: false })).toMatchObject({
      skipped: 'lease_held',
      remaining: -1,
      deadLetters: -1,
    })
    expect(calls).toEqual(['lease'])
  })

  test('an outage while writing puts the claim back, reports the error, releases the lease', async () => {
    const outage = Object.assign(new Error('fetch failed'), { name: 'TypeError' })
    const { buffer, calls } = fakeBuffer({ claims: [[update(1), update(2)]] })
    const { deps: d, seen } = deps({ buffer, db: fakeDatabase(outage) })
    const report = await flushProgress(d, {}, { drain: true })
    expect(report).toMatchObject({ flushed: 0, buried: 0, rounds: 1, error: 'TypeError' })
    expect(calls).toEqual(['lease', 'claim', 'bury:0', 'ack:0', 'nack:2', 'release', 'stats'])
    expect(seen).toContainEqual(expect.objectContaining({ type: 'batch.flush', ok: false }))
  })

  test('an empty buffer: one claim, nothing written, the lease released', async () => {
    const { buffer, calls } = fakeBuffer({})
    const report = await flushProgress(deps({ buffer, db: fakeDatabase(new Error('x')) }).deps)
    expect(report).toMatchObject({ flushed: 0, rounds: 0, remaining: 0, deadLetters: 0 })
    expect(report.error).toBeUndefined()
    expect(calls).toEqual(['lease', 'claim', 'release', 'stats'])
  })
})
