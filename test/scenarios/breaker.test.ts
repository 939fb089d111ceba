// The Neon circuit breaker through the stand-in, in both runtimes: it opens at its threshold,
// answers fast while open, closes after one probe, and shares its state across isolates.
import { describe, expect, test } from 'vitest'
import type { FaultPlan } from '../../local/faults.ts'
import { bearer, getToken } from '../support/agents.ts'
import { randomSecret, type Scenario, scenario } from '../support/scenario.ts'

const s = await scenario()
const path = (user: string) => `/api/v1/agent/users/${user}/context`
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** A fresh isolate with a small, fast breaker; `prefix` shares Redis state between isolates. */
function isolate(prefix = `t:${randomSecret(6)}:`, extra: Record<string, string> = {}): Scenario {
  return s.withEnv({
    REDIS_KEY_PREFIX: prefix,
    DATABASE_TIMEOUT_MS: '300',
    HEALTH_CHECK_TIMEOUT_MS: '300',
    CONTEXT_CACHE_TTL_MS: '1', // every read goes to the database
    BREAKER_CONSECUTIVE_FAILURES: '5',
    BREAKER_MINIMUM_CALLS: '5',
    BREAKER_WINDOW_SIZE: '10',
    BREAKER_FAILURE_RATE_PERCENT: '50',
    BREAKER_SLOW_CALL_MS: '150',
    BREAKER_SLOW_CALL_RATE_PERCENT: '80',
    BREAKER_OPEN_MS: '600',
    BREAKER_OPEN_MAX_MS: '5000',
    BREAKER_SNAPSHOT_TTL_MS: '50',
    ISOLATE: randomSecret(4), // a distinct env object, hence distinct per-isolate services
    ...extra,
  })
}

async function read(iso: Scenario, auth: Record<string, string>, user = 'demo-user-1') {
  const started = Date.now()
  const res = await iso.fetch(path(user), { headers: auth })
  const body = await res.json()
  return { res, body, ms: Date.now() - started, degraded: res.headers.get('x-degraded') }
}

async function authFor(iso: Scenario) {
  const auth = bearer((await getToken(iso)).access_token)
  // Prime the grant cache while the database answers.
  for (const user of ['demo-user-1', 'demo-user-2'])
    expect((await read(iso, auth, user)).res.status).toBe(200)
  return auth
}

/** Reads until the answers say the circuit is open; returns how many reads that took. */
async function tripWith(iso: Scenario, auth: Record<string, string>, plan: FaultPlan, limit = 30) {
  await s.neon.setFaults(plan)
  for (let i = 1; i <= limit; i++) {
    const { res, degraded } = await read(iso, auth)
    expect(res.status).toBe(200) // degraded, never a 5xx
    if (degraded === 'circuit_open') return i
  }
  throw new Error('the circuit never opened')
}

describe(`Neon circuit breaker (${s.runtime})`, () => {
  test.each([
    ['refused connections', { refuse: true }],
    ['a hang longer than the timeout', { hang: true }],
    ['50 % errors', { errorRate: 0.5 }],
    ['slow answers', { latencyMs: 200 }],
  ] as const)('opens on %s, then answers fast without calling Neon', async (_name, plan) => {
    const iso = isolate()
    const auth = await authFor(iso)
    try {
      const reads = await tripWith(iso, auth, plan)
      expect(reads).toBeGreaterThan(0)
      await s.neon.resetStats()
      for (let i = 0; i < 5; i++) {
        const { body, ms, degraded } = await read(iso, auth, i % 2 ? 'demo-user-1' : 'demo-user-2')
        expect(degraded).toBe('circuit_open')
        expect(body.degraded).toBe(true)
        expect(['stale-cache', 'basic']).toContain(body.source)
        expect(ms).toBeLessThan(100) // far below the 300 ms timeout
      }
      expect((await s.neon.stats()).requests).toBe(0)
    } finally {
      await s.neon.clearFaults()
    }
  })

  test('after recovery, one probe closes it', async () => {
    const iso = isolate()
    const auth = await authFor(iso)
    try {
      await tripWith(iso, auth, { refuse: true })
    } finally {
      await s.neon.clearFaults()
    }
    await sleep(800) // the open period (600 ms ± 20 %)
    await s.neon.resetStats()
    // Two users at once: one read is the probe, the other is refused while it runs. (Reads of
    // one user would share the probe's load: the cache runs one load per key.)
    const burst = await Promise.all([
      read(iso, auth, 'demo-user-1'),
      read(iso, auth, 'demo-user-2'),
    ])
    expect((await s.neon.stats()).requests).toBe(1) // the probe, and nothing else
    expect(burst.filter((r) => r.degraded === null)).toHaveLength(1)
    expect(burst.filter((r) => r.degraded === 'circuit_open')).toHaveLength(1)
    const after = await read(iso, auth)
    expect(after.degraded).toBeNull()
    expect(after.body.source).toBe('database')
  })

  test.runIf(s.hasRedis)(
    'a second isolate opens on the first one’s snapshot, and only one probes',
    async () => {
      const prefix = `t:${randomSecret(6)}:`
      const a = isolate(prefix)
      const b = isolate(prefix)
      const authA = await authFor(a)
      const authB = await authFor(b)
      try {
        await tripWith(a, authA, { refuse: true })
        await a.settle() // the snapshot is published through waitUntil
        await sleep(60) // past B's snapshot TTL
        await s.neon.resetStats()
        const first = await read(b, authB)
        expect(first.degraded).toBe('circuit_open') // B's very first read after the outage
        expect((await s.neon.stats()).requests).toBe(0) // without a single failure of its own
      } finally {
        await s.neon.clearFaults()
      }
      await sleep(800)
      await s.neon.resetStats()
      const both = await Promise.all([read(a, authA), read(b, authB)])
      expect((await s.neon.stats()).requests).toBe(1) // one probe across both isolates
      expect(both.filter((r) => r.degraded === null)).toHaveLength(1)
      expect(both.filter((r) => r.degraded === 'circuit_open')).toHaveLength(1)
      await a.settle()
      await b.settle()
      await sleep(60)
      // The probe's isolate closed and published; the other adopts the close on its next read.
      for (const [iso, auth] of [
        [a, authA],
        [b, authB],
      ] as const) {
        await sleep(700) // any lost election's lease has expired by now
        expect((await read(iso, auth)).degraded).toBeNull()
      }
    },
  )

  test.runIf(s.hasRedis)('with Redis refused, the breaker still works on local state', async () => {
    const iso = isolate()
    const auth = await authFor(iso)
    await s.redis.setFaults({ refuse: true })
    try {
      await tripWith(iso, auth, { refuse: true })
      await s.neon.resetStats()
      expect((await read(iso, auth)).degraded).toBe('circuit_open')
      expect((await s.neon.stats()).requests).toBe(0)
      await s.neon.clearFaults()
      await sleep(800)
      expect((await read(iso, auth)).degraded).toBeNull()
    } finally {
      await s.neon.clearFaults()
      await s.redis.clearFaults()
    }
  })
})
