// The progress fault run, inside workerd: 10,000 updates from concurrent senders that retry
// on 503, while the Neon stand-in refuses, hangs and errors for stretches and Redis drops out
// once. Afterwards every update that got a 202 is in the event log exactly once, and the
// current state of every (user, task) is its update with the latest occurred_at.
import { expect, test } from 'vitest'
import { sql } from '../../src/db/client.ts'
import type { FaultPlan } from '../../src/local/faults.ts'
import { bearer, getToken, jsonPost } from '../support/agents.ts'
import { scenario } from '../support/scenario.ts'

const TOTAL = 10_000
const PER_REQUEST = 10
const SENDERS = 8
const USERS = ['demo-user-1', 'demo-user-2']
const TASKS = 25

const s = await scenario({
  env: {
    DATABASE_TIMEOUT_MS: '250',
    REDIS_TIMEOUT_MS: '250',
    HEALTH_CHECK_TIMEOUT_MS: '250',
    BREAKER_OPEN_MS: '250',
    BREAKER_OPEN_MAX_MS: '1000',
    PROGRESS_CLAIM_TIMEOUT_MS: '1500',
    PROGRESS_BATCH_DELAY_MS: '200',
    RATE_LIMIT_REQUESTS_PER_AGENT: '1000000',
  },
})

interface Update {
  user_id: string
  task_id: string
  status: 'in_progress' | 'completed'
  progress: number
  occurred_at: string
  idempotency_key: string
}

/** Updates with distinct occurred_at per group, in a shuffled (out-of-order) sequence. */
function makeUpdates(): Update[] {
  const base = Date.now() - 60 * 60 * 1000
  const updates: Update[] = []
  for (let i = 0; i < TOTAL; i++) {
    const user = USERS[i % USERS.length]!
    const task = `fault-task-${Math.floor(i / USERS.length) % TASKS}`
    updates.push({
      user_id: user,
      task_id: task,
      status: i % 7 === 0 ? 'completed' : 'in_progress',
      progress: i % 101,
      occurred_at: new Date(base + i * 37).toISOString(),
      idempotency_key: `fault-${crypto.randomUUID()}`,
    })
  }
  for (let i = updates.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[updates[i], updates[j]] = [updates[j]!, updates[i]!]
  }
  return updates
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

test('10,000 updates through refusals, hangs, errors and a Redis outage: each 202 is stored once, state is the latest', {
  timeout: 300_000,
}, async () => {
  const auth = bearer((await getToken(s)).access_token)
  const updates = makeUpdates()
  const counts = {
    requests: 0,
    accepted202: 0,
    queued: 0,
    committed: 0,
    duplicates: 0,
    unavailable: 0,
    other: 0,
  }
  const acknowledged = new Set<string>()
  const phases: string[] = []
  let next = 0

  async function sender() {
    while (next < updates.length) {
      const chunk = updates.slice(next, next + PER_REQUEST)
      next += PER_REQUEST
      for (;;) {
        await weather()
        counts.requests++
        const res = await s.fetch('/api/v1/agent/progress', jsonPost({ updates: chunk }, auth))
        if (res.status === 202) {
          const body = (await res.json()) as {
            accepted: number
            duplicates: number
            status: string
          }
          counts.accepted202++
          counts.duplicates += body.duplicates
          if (body.status === 'queued') counts.queued++
          else counts.committed++
          for (const u of chunk) acknowledged.add(u.idempotency_key)
          break
        }
        const text = await res.text()
        if (res.status === 503) {
          counts.unavailable++
          await sleep(Math.min(100, Number(res.headers.get('retry-after') ?? 1) * 1000))
          continue
        }
        counts.other++
        throw new Error(`unexpected ${res.status}: ${text}`)
      }
    }
  }

  // The weather: stretches of Neon trouble, and one Redis outage (part of it while Neon is
  // down too, so some requests find no durable store at all and must retry). Phases are
  // measured in requests sent, not in time: inside workerd the test's own fetches share one
  // invocation's connection limit, so wall-clock phases would stretch unpredictably.
  // [name, upstream, plan, requests, only in the first round]
  const schedule: [string, 'neon' | 'redis', FaultPlan, number, boolean?][] = [
    ['healthy', 'neon', {}, 40],
    ['neon refuses', 'neon', { refuse: true }, 60],
    ['healthy', 'neon', {}, 40],
    ['neon hangs', 'neon', { hang: true }, 40],
    ['healthy', 'neon', {}, 40],
    ['neon errors half the time', 'neon', { errorRate: 0.5 }, 60],
    ['healthy', 'neon', {}, 40],
    ['redis drops out', 'redis', { refuse: true }, 60, true],
    ['neon refuses while redis is out', 'neon', { refuse: true }, 30, true],
    ['neon back, redis still out', 'neon', {}, 30, true],
    ['redis back', 'redis', {}, 40, true],
  ]
  let phase = -1
  let phaseEndsAt = 0
  let changing: Promise<void> | undefined
  async function weather() {
    if (changing || counts.requests < phaseEndsAt) return changing
    changing = (async () => {
      for (;;) {
        phase++
        const step = schedule[phase % schedule.length]!
        const [name, upstream, plan, requests, once] = step
        // Redis drops out once: later rounds skip those phases.
        if ((once && phase >= schedule.length) || (upstream === 'redis' && !s.hasRedis)) continue
        await (Object.keys(plan).length ? s[upstream].setFaults(plan) : s[upstream].clearFaults())
        phases.push(`${counts.requests}: ${name}`)
        phaseEndsAt = counts.requests + requests
        break
      }
      changing = undefined
    })()
    return changing
  }

  const started = Date.now()
  await Promise.all(Array.from({ length: SENDERS }, sender))
  const sendingMs = Date.now() - started
  await s.neon.clearFaults()
  if (s.hasRedis) await s.redis.clearFaults()
  await s.settle()

  // Drain what is still buffered (the cron route does the same in production).
  let remaining = -1
  for (let i = 0; i < 50 && remaining !== 0; i++) {
    const res = await s.fetch('/api/v1/internal/flush', {
      method: 'POST',
      headers: { Authorization: `Bearer ${s.env.CRON_SECRET}` },
    })
    remaining = ((await res.json()) as { remaining: number }).remaining
    await s.settle()
    if (remaining !== 0) await sleep(200)
  }
  expect(remaining).toBe(0)

  // Every acknowledged update: exactly once in the event log.
  const db = s.db()
  const logged = await db.query<{ idempotency_key: string; n: number }>(
    sql`SELECT idempotency_key, count(*)::int AS n FROM progress_events
        WHERE agent_id = 'demo-agent' AND idempotency_key LIKE 'fault-%' GROUP BY idempotency_key`,
  )
  const inLog = new Map(logged.map((r) => [r.idempotency_key, r.n]))
  const missing = [...acknowledged].filter((k) => !inLog.has(k))
  const twice = logged.filter((r) => r.n !== 1)

  // Current state: the update with the latest occurred_at of each (user, task).
  const latest = new Map<string, Update>()
  for (const u of updates) {
    const key = `${u.user_id}/${u.task_id}`
    const seen = latest.get(key)
    if (!seen || u.occurred_at > seen.occurred_at) latest.set(key, u)
  }
  const stored = await db.query<{
    user_id: string
    task_id: string
    progress: number
    status: string
    occurred_at: Date
  }>(
    sql`SELECT user_id, task_id, progress, status, occurred_at FROM progress_state WHERE task_id LIKE 'fault-task-%'`,
  )
  const wrong = stored.filter((row) => {
    const want = latest.get(`${row.user_id}/${row.task_id}`)
    return (
      !want ||
      want.progress !== row.progress ||
      want.status !== row.status ||
      new Date(row.occurred_at).toISOString() !== want.occurred_at
    )
  })

  // console.info: the scenario captures console.log, where the app's own log lines go.
  console.info(
    `[fault run, ${s.runtime}] ${TOTAL} updates in ${Date.now() - started} ms: ${counts.requests} requests, ` +
      `${counts.accepted202} answered 202 (${counts.queued} queued, ${counts.committed} committed directly), ` +
      `${counts.unavailable} answered 503 and were retried, ${counts.duplicates} duplicates counted; ` +
      `event log holds ${inLog.size} of ${acknowledged.size} acknowledged updates, ` +
      `${missing.length} missing, ${twice.length} stored more than once; ` +
      `${stored.length} (user, task) states, ${wrong.length} not the latest. ` +
      `Sending took ${sendingMs} ms; the weather, by requests sent: ${phases.join('; ')}`,
  )
  expect(acknowledged.size).toBe(TOTAL)
  expect(missing).toEqual([])
  expect(twice).toEqual([])
  expect(inLog.size).toBe(TOTAL)
  expect(stored).toHaveLength(latest.size)
  expect(wrong).toEqual([])
  expect(counts.other).toBe(0)
  // The weather really happened while updates were being sent.
  expect(counts.unavailable).toBeGreaterThan(0)
  if (s.hasRedis) expect(counts.committed).toBeGreaterThan(0) // direct commits while Redis was out
})
