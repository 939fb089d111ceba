// The progress fault run, inside workerd: 10,000 updates from concurrent senders that retry
// on 503 with the same idempotency keys, while the Neon stand-in refuses, hangs and errors for
// stretches, Redis drops out, hangs and answers too late, and poison of every kind is mixed in
// (refused at the door with a 400, accepted as storable, or refused by Postgres at write time
// and dead-lettered — or, without the buffer, refused with a 422). Afterwards every update
// that got a 202 is in the event log exactly once, the current state of every (user, task) is
// its update with the latest occurred_at, every poison item was refused or is a visible dead
// letter, and no 5xx went out without problem+json and Retry-After.
import { expect, test } from 'vitest'
import type { FaultPlan } from '../../local/faults.ts'
import { sql } from '../../src/db/client.ts'
import { bearer, getToken } from '../support/agents.ts'
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
// Store-side poison: Postgres refuses (SQLSTATE 22023) events of tasks named poison-….
await s.db().query({
  text: `CREATE FUNCTION poison_guard() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'poisoned update' USING ERRCODE = '22023'; END $$`,
  params: [],
})
await s.db().query({
  text: `CREATE TRIGGER poison_guard BEFORE INSERT ON progress_events FOR EACH ROW
         WHEN (NEW.task_id LIKE 'poison-%') EXECUTE FUNCTION poison_guard()`,
  params: [],
})

interface Update {
  user_id: string
  task_id: string
  status: 'in_progress' | 'completed'
  progress: number
  occurred_at: string
  idempotency_key: string
  data?: Record<string, unknown>
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

/** One poison item of each kind, sent on its own, with what may become of it. */
interface Poison {
  kind: string
  body: Record<string, unknown> | string
  /** Refused at the door (400) — or storable and accepted, or dead-lettered by the flush. */
  expect: 'refused' | 'stored' | 'dead-letter'
  key: string
  answers: number[]
}
function poisons(round: number): Poison[] {
  const key = (kind: string) => `poison-${kind}-${round}-${crypto.randomUUID()}`
  const at = new Date(Date.now() - 30 * 60 * 1000).toISOString()
  const base = (kind: string, over: Record<string, unknown> = {}) => ({
    user_id: 'demo-user-1',
    task_id: `fault-extra-${kind}-${round}`,
    status: 'in_progress',
    progress: 1,
    occurred_at: at,
    idempotency_key: key(kind),
    ...over,
  })
  const list: Omit<Poison, 'answers' | 'key'>[] = [
    {
      kind: 'year-0000',
      body: base('year0', { occurred_at: '0000-01-01T00:00:00Z' }),
      expect: 'refused',
    },
    {
      kind: 'nul-in-data',
      body: base('nuldata', { data: { note: 'a\u0000b' } }),
      expect: 'refused',
    },
    { kind: 'nul-in-task', body: base('nultask', { task_id: 't\u0000' }), expect: 'refused' },
    { kind: 'lone-surrogate', body: base('lone', { task_id: 't\udfff' }), expect: 'refused' },
    {
      kind: '__proto__',
      // Raw text: a JS object literal would make __proto__ the prototype, not a key.
      body: `${JSON.stringify(base('proto')).slice(0, -1)},"data":{"__proto__":{"x":1},"a":1}}`,
      expect: 'stored',
    },
    {
      kind: 'refused-by-postgres',
      body: base('pg', { task_id: `poison-pg-${round}` }),
      expect: 'dead-letter',
    },
  ]
  return list.map((p) => ({
    ...p,
    key:
      typeof p.body === 'string'
        ? String(JSON.parse(p.body).idempotency_key)
        : String(p.body.idempotency_key),
    answers: [],
  }))
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** A command to the scenario's Redis, through the Upstash stand-in. */
async function redis(...command: string[]): Promise<unknown> {
  const res = await fetch(s.env.UPSTASH_REDIS_REST_URL!, {
    method: 'POST',
    headers: { Authorization: `Bearer ${s.env.UPSTASH_REDIS_REST_TOKEN}` },
    body: JSON.stringify(command),
  })
  return ((await res.json()) as { result: unknown }).result
}

test('10,000 updates and poison through refusals, hangs, errors and Redis outages: each 202 is stored once, each poison refused or dead-lettered, state is the latest', {
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
    outcomeUnknown: 0,
    bare5xx: 0,
    other: 0,
  }
  const acknowledged = new Set<string>()
  const phases: string[] = []
  const poisonSent: Poison[] = []
  let next = 0

  async function send(body: string): Promise<Response> {
    await weather()
    counts.requests++
    const res = await s.fetch('/api/v1/agent/progress', {
      method: 'POST',
      headers: { ...auth, 'Content-Type': 'application/json' },
      body,
    })
    if (res.status >= 500) {
      // Every 5xx says what happened, in problem+json, and when to come back.
      const type = res.headers.get('content-type') ?? ''
      if (
        !type.startsWith('application/problem+json') ||
        !/^\d+$/.test(res.headers.get('retry-after') ?? '')
      ) {
        counts.bare5xx++
      }
    }
    return res
  }

  async function sender() {
    while (next < updates.length) {
      const chunk = updates.slice(next, next + PER_REQUEST)
      next += PER_REQUEST
      for (;;) {
        const res = await send(JSON.stringify({ updates: chunk }))
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
          const code = (JSON.parse(text) as { code: string }).code
          if (code === 'outcome_unknown') counts.outcomeUnknown++
          else counts.unavailable++
          // The same request again, same keys: nothing is applied twice.
          await sleep(Math.min(100, Number(res.headers.get('retry-after') ?? 1) * 1000))
          continue
        }
        counts.other++
        throw new Error(`unexpected ${res.status}: ${text}`)
      }
    }
  }

  /** Sends one round of poison, each item retried like any update until it gets an answer. */
  async function poisoner() {
    for (let round = 0; next < updates.length; round++) {
      for (const p of poisons(round)) {
        poisonSent.push(p)
        for (;;) {
          const res = await send(typeof p.body === 'string' ? p.body : JSON.stringify(p.body))
          p.answers.push(res.status)
          await res.arrayBuffer()
          if (res.status !== 503) break
          await sleep(50)
        }
      }
      await sleep(200)
    }
  }

  // The weather: stretches of Neon trouble; Redis dropping out, hanging and answering too
  // late (some of it while Neon is down too, so some requests find no durable store, or a
  // store whose outcome is unknown, and must retry). Phases are measured in requests sent,
  // not in time: inside workerd the test's own fetches share one invocation's connection
  // limit, so wall-clock phases would stretch unpredictably.
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
    ['redis hangs', 'redis', { hang: true }, 40, true],
    ['neon refuses while redis hangs', 'neon', { refuse: true }, 20, true],
    ['neon back, redis still hangs', 'neon', {}, 20, true],
    ['redis answers too late', 'redis', { latencyMs: 400 }, 30, true],
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
        // Redis trouble comes once: later rounds skip those phases.
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

  // Items buffered by the version before storable input, which Lua's cjson cannot decode.
  const legacy: string[] = []
  if (s.hasRedis) {
    const prefix = s.env.REDIS_KEY_PREFIX!
    for (let i = 0; i < 3; i++) {
      const id = crypto.randomUUID()
      const now = Date.now()
      legacy.push(id)
      await redis(
        'HSET',
        `${prefix}progress:items`,
        id,
        `{"id":"${id}","batchId":"${crypto.randomUUID()}","agentId":"demo-agent","idempotencyKey":"legacy-${id}","userId":"demo-user-1","taskId":"t\\udfff","status":"in_progress","progress":1,"data":null,"occurredAt":"${new Date(now - 60_000).toISOString()}","receivedAt":${now},"g":"demo-user-1\\u0000t\\udfff"}`,
      )
      await redis('ZADD', `${prefix}progress:ready`, String(now), id)
    }
  }

  const started = Date.now()
  await Promise.all([...Array.from({ length: SENDERS }, sender), poisoner()])
  const sendingMs = Date.now() - started
  await s.neon.clearFaults()
  if (s.hasRedis) await s.redis.clearFaults()
  await sleep(600) // what Redis was still holding back (answers too late) lands now
  await s.settle()

  // Drain what is still buffered (the cron route does the same in production).
  let remaining = -1
  let deadLetters = -1
  for (let i = 0; i < 50 && remaining !== 0; i++) {
    const res = await s.fetch('/api/v1/internal/flush', {
      method: 'POST',
      headers: { Authorization: `Bearer ${s.env.CRON_SECRET}` },
    })
    const report = (await res.json()) as { remaining: number; dead_letters: number }
    remaining = report.remaining
    deadLetters = report.dead_letters
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

  // Poison: refused at the door, stored as sent, or a visible dead letter; never lost silently.
  const deadKeys = new Set<string>()
  if (s.hasRedis) {
    const dead = (await redis('HVALS', `${s.env.REDIS_KEY_PREFIX}progress:dead`)) as string[]
    for (const item of dead) deadKeys.add(/"idempotencyKey":"([^"]+)"/.exec(item)?.[1] ?? '')
  }
  const poisonEvents = await db.query<{ key: string; data: string | null }>(
    sql`SELECT idempotency_key AS key, data::text AS data FROM progress_events WHERE idempotency_key LIKE 'poison-%'`,
  )
  const storedPoison = new Map(poisonEvents.map((r) => [r.key, r.data]))
  const misplaced = poisonSent.filter((p) => {
    const last = p.answers.at(-1)
    if (p.expect === 'refused') return last !== 400 || storedPoison.has(p.key)
    if (p.expect === 'stored')
      return last !== 202 || storedPoison.get(p.key) !== '{"__proto__":{"x":1},"a":1}'
    // Refused by Postgres: a dead letter when the buffer took it, a 422 when it was committed
    // directly (the request, and nothing of it, was refused).
    return !(last === 422 || (last === 202 && deadKeys.has(p.key))) || storedPoison.has(p.key)
  })
  const legacyDead = legacy.filter((id) => deadKeys.has(`legacy-${id}`))
  const byOutcome = (e: Poison['expect']) => poisonSent.filter((p) => p.expect === e).length

  // console.info: the scenario captures console.log, where the app's own log lines go.
  console.info(
    `[fault run, ${s.runtime}] ${TOTAL} updates in ${Date.now() - started} ms: ${counts.requests} requests, ` +
      `${counts.accepted202} update requests answered 202 (${counts.queued} queued, ${counts.committed} committed directly), ` +
      `${counts.unavailable} answered 503 nothing-accepted and ${counts.outcomeUnknown} 503 outcome_unknown, all retried with the same keys; ` +
      `${counts.duplicates} duplicates counted; ${counts.bare5xx} 5xx without problem+json and Retry-After; ` +
      `event log holds ${inLog.size} of ${acknowledged.size} acknowledged updates, ` +
      `${missing.length} missing, ${twice.length} stored more than once; ` +
      `${stored.length} (user, task) states, ${wrong.length} not the latest; ` +
      `poison: ${poisonSent.length} sent (${byOutcome('refused')} refused at the door, ${byOutcome('stored')} storable and stored as sent, ` +
      `${byOutcome('dead-letter')} refused by Postgres: ${poisonSent.filter((p) => p.expect === 'dead-letter' && p.answers.at(-1) === 422).length} answered 422 directly, ` +
      `${poisonSent.filter((p) => p.expect === 'dead-letter' && deadKeys.has(p.key)).length} dead-lettered), ${misplaced.length} misplaced; ` +
      `${legacyDead.length} of ${legacy.length} undecodable legacy items dead-lettered; ${deadLetters} dead letters at the end. ` +
      `Sending took ${sendingMs} ms; the weather, by requests sent: ${phases.join('; ')}`,
  )
  expect(acknowledged.size).toBe(TOTAL)
  expect(missing).toEqual([])
  expect(twice).toEqual([])
  expect(inLog.size).toBe(TOTAL)
  expect(stored).toHaveLength(latest.size)
  expect(wrong).toEqual([])
  expect(counts.other).toBe(0)
  expect(counts.bare5xx).toBe(0)
  expect(misplaced.map((p) => `${p.kind}: ${p.answers.join(',')}`)).toEqual([])
  expect(legacyDead).toEqual(legacy)
  expect(poisonSent.length).toBeGreaterThanOrEqual(6)
  // The weather really happened while updates were being sent.
  expect(counts.unavailable + counts.outcomeUnknown).toBeGreaterThan(0)
  if (s.hasRedis) {
    expect(counts.committed).toBeGreaterThan(0) // direct commits while Redis was out or hanging
    expect(deadLetters).toBe(deadKeys.size)
  }
})
