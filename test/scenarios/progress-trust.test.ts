// Progress you can trust (issue 1/8): each numbered case of the issue, in both runtimes, with
// the Redis buffer and without it (direct commits), bursts included.
import { describe, expect, test } from 'vitest'
import { sql } from '../../src/db/client.ts'
import { DEMO_AGENT_2 } from '../support/agents.ts'
import { progressIsolate } from '../support/progress-isolate.ts'
import { type Scenario, scenario } from '../support/scenario.ts'

const PROGRESS = '/api/v1/agent/progress'
// Store-side poison: Postgres refuses (SQLSTATE 22023) any update of a task named poison-….
const POISON = `
CREATE FUNCTION poison_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'poisoned update' USING ERRCODE = '22023';
END $$;
CREATE TRIGGER poison_guard BEFORE INSERT ON progress_events FOR EACH ROW
  WHEN (NEW.task_id LIKE 'poison-%') EXECUTE FUNCTION poison_guard();
`
// Breakers that an outage of a few requests does not open (each test sets its own faults).
const PATIENT = {
  BREAKER_CONSECUTIVE_FAILURES: '1000',
  BREAKER_FAILURE_RATE_PERCENT: '100',
  BREAKER_MINIMUM_CALLS: '100',
  BREAKER_WINDOW_SIZE: '100',
}

const buffered = await scenario()
const direct = await scenario({ redis: false })
for (const s of [buffered, direct]) {
  for (const statement of POISON.split(/;\n(?=CREATE)/)) {
    await s.db().query({ text: statement, params: [] })
  }
}
const runtime = buffered.runtime
let counter = 0
const unique = (label: string) =>
  `${label}-${runtime}-${++counter}-${crypto.randomUUID().slice(0, 8)}`
const isoAgo = (ms: number) => new Date(Date.now() - ms).toISOString()
const update = (over: Record<string, unknown> = {}) => ({
  user_id: 'demo-user-1',
  task_id: unique('task'),
  status: 'in_progress',
  progress: 10,
  occurred_at: isoAgo(1000),
  ...over,
})

/** One "isolate" of a scenario: its own services (and, with Redis, its own key prefix). */
const isolate = (s: Scenario, env: Record<string, string> = {}, agent?: string) =>
  progressIsolate(s, { REDIS_KEY_PREFIX: `t:${unique('p')}:`, ...env }, agent)

async function events(s: Scenario, taskId: string) {
  return s
    .db()
    .query<{ key: string; data: string | null; batch_id: string }>(
      sql`SELECT idempotency_key AS key, data::text AS data, batch_id FROM progress_events WHERE task_id = ${taskId}`,
    )
}

async function state(s: Scenario, taskId: string) {
  const rows = await s
    .db()
    .query<{ status: string; progress: number }>(
      sql`SELECT status, progress FROM progress_state WHERE task_id = ${taskId}`,
    )
  return rows[0]
}

/** A command to the scenario's Redis, through the Upstash stand-in (as Upstash's REST API). */
async function redis(s: Scenario, ...command: string[]): Promise<unknown> {
  const res = await fetch(s.env.UPSTASH_REDIS_REST_URL!, {
    method: 'POST',
    headers: { Authorization: `Bearer ${s.env.UPSTASH_REDIS_REST_TOKEN}` },
    body: JSON.stringify(command),
  })
  return ((await res.json()) as { result: unknown }).result
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe.each([
  ['with the Redis buffer', buffered],
  ['without Redis (direct commits)', direct],
])(`progress you can trust (${runtime}), %s`, (_mode, s) => {
  const queuedOr = s.hasRedis ? 'queued' : 'committed'

  test('1. an unstorable timestamp, NUL in data or in task_id: 400 naming the path; every other agent’s update still lands', async () => {
    const a = await isolate(s)
    const cases: [Record<string, unknown>, string][] = [
      [update({ occurred_at: '0000-01-01T00:00:00Z' }), 'occurred_at'],
      [update({ occurred_at: '1970-01-01T00:30:00+01:00' }), 'occurred_at'],
      [update({ data: { note: 'a\u0000b' } }), 'data.note'],
      [update({ data: { 'k\u0000': 1 } }), 'data.k\u0000'],
      [update({ task_id: 't\u0000' }), 'task_id'],
    ]
    for (const [body, path] of cases) {
      const { res, body: problem } = await a.post(body)
      expect(res.status).toBe(400)
      expect(problem.errors.map((e: { path: string }) => e.path)).toEqual([path])
      if (path !== 'task_id') expect(await events(s, body.task_id as string)).toEqual([])
    }
    // Another agent's valid update is taken, and the flush drains everything.
    const b = await isolate(s, {}, DEMO_AGENT_2)
    const valid = update({ user_id: 'demo-user-3' })
    expect((await b.post(valid)).body).toMatchObject({ accepted: 1, status: queuedOr })
    const report = await b.flush()
    expect(report).toMatchObject({ remaining: 0, dead_letters: 0 })
    expect(await events(s, valid.task_id as string)).toHaveLength(1)
    expect((await b.health()).status).not.toBe('unhealthy')
  })

  test('2. an unpaired surrogate anywhere is refused with 400 naming the path', async () => {
    const a = await isolate(s)
    const cases: [Record<string, unknown>, string][] = [
      [update({ task_id: 't\udfff' }), 'task_id'],
      [update({ task_id: '\ud800x' }), 'task_id'],
      [update({ idempotency_key: 'k\udc00' }), 'idempotency_key'],
      [update({ data: { deep: [{ x: 'ok' }, { y: '\ud83d' }] } }), 'data.deep.1.y'],
    ]
    for (const [body, path] of cases) {
      const { res, body: problem } = await a.post(body)
      expect(res.status).toBe(400)
      expect(problem.errors.map((e: { path: string }) => e.path)).toEqual([path])
    }
    // A paired surrogate (an astral character) is storable, and stored as sent.
    const astral = update({ task_id: `emoji-😀-${unique('t')}`, data: { face: '😀' } })
    expect((await a.post(astral)).res.status).toBe(202)
    await a.flush()
    expect((await events(s, astral.task_id as string))[0]?.data).toBe('{"face":"😀"}')
  })

  test('3. a poison request never affects another agent’s concurrent requests', async () => {
    const a = await isolate(s)
    const b = await isolate(s, {}, DEMO_AGENT_2)
    const poison = update({ task_id: unique('poison') })
    const others = Array.from({ length: 40 }, () => update({ user_id: 'demo-user-3' }))
    const [bad, ...good] = await Promise.all([a.post(poison), ...others.map((u) => b.post(u))])
    for (const g of good) {
      expect(g.res.status).toBe(202)
      expect(g.body).toMatchObject({ accepted: 1, duplicates: 0, status: queuedOr })
    }
    if (s.hasRedis) {
      // Taken into the buffer; the flush commits the rest and dead-letters only the poison.
      expect(bad.res.status).toBe(202)
      expect((await b.flush()).dead_letters).toBe(0)
      const report = await a.flush()
      expect(report.remaining).toBe(0)
      expect(report.dead_letters).toBeGreaterThanOrEqual(1)
      const status = await a.batch(bad.body.batch_id)
      expect(status.body).toMatchObject({ status: 'queued', dead_letters: 1, committed_at: null })
      for (const g of good) {
        expect((await b.batch(g.body.batch_id)).body).toMatchObject({ status: 'committed' })
      }
      // Visible: a critical alert and the count in the health report.
      const health = await a.health()
      expect(health.status).toBe('unhealthy')
      expect(health.health.alerts).toContainEqual(
        expect.objectContaining({ id: 'progress_dead_letters', severity: 'critical' }),
      )
      expect(health.health.metrics.progress.buffer.dead_letters).toBeGreaterThanOrEqual(1)
    } else {
      // Without a buffer to hold it, the database's refusal is the answer: nothing accepted.
      expect(bad.res.status).toBe(422)
      expect(bad.body.code).toBe('update_refused')
    }
    for (const u of others) expect(await events(s, u.task_id as string)).toHaveLength(1)
    expect(await events(s, poison.task_id as string)).toEqual([])
  })

  test('4. data is stored byte for byte: __proto__ and constructor keys, key order, numbers', async () => {
    const a = await isolate(s)
    const data =
      '{"__proto__":{"x":1},"a":1,"constructor":{"prototype":null},"z":[1.5,-0,1e+21],"b":"ü"}'
    const u = update()
    const body = `${JSON.stringify(u).slice(0, -1)},"data":${data}}`
    const res = await a.s.fetch(PROGRESS, {
      method: 'POST',
      headers: { ...a.auth, 'Content-Type': 'application/json' },
      body,
    })
    expect(res.status).toBe(202)
    await a.flush()
    const [row] = await events(s, u.task_id as string)
    // The bytes as sent (-0 included; it used to be re-serialised as 0).
    expect(row?.data).toBe(data)
  })

  test('4b. data as sent is the update: numbers past a double’s precision and repeated keys make other updates', async () => {
    const a = await isolate(s)
    const send = async (u: Record<string, unknown>, data: string) => {
      const res = await a.s.fetch(PROGRESS, {
        method: 'POST',
        headers: { ...a.auth, 'Content-Type': 'application/json' },
        body: `${JSON.stringify(u).slice(0, -1)},"data":${data}}`,
      })
      return { status: res.status, body: (await res.json()) as Record<string, unknown> }
    }
    // Derived keys: 2^53 + 1 and 2^53 are one double, not one update.
    const u = update()
    expect((await send(u, '{"n":9007199254740993}')).body).toMatchObject({ accepted: 1 })
    expect((await send(u, '{"n":9007199254740992}')).body).toMatchObject({ accepted: 1 })
    expect((await send(u, '{ "n" : 9007199254740993 }')).body).toMatchObject({ duplicates: 1 })
    // One key: another number, or a repeated key, is a re-use; spacing and key order are not.
    const k = update({ idempotency_key: unique('exact') })
    expect((await send(k, '{"n":12345678901234567890,"m":[1.5]}')).body).toMatchObject({
      accepted: 1,
    })
    expect((await send(k, '{"m":[1.50], "n":12345678901234567890}')).body).toMatchObject({
      duplicates: 1,
    })
    for (const other of [
      '{"n":12345678901234567891,"m":[1.5]}',
      '{"n":1.2345678901234567e19,"m":[1.5]}',
      '{"n":12345678901234567890,"m":[1.5],"m":[1.5]}',
    ]) {
      expect({ other, ...(await send(k, other)) }).toMatchObject({
        other,
        status: 422,
        body: { code: 'idempotency_key_reused' },
      })
    }
    await a.flush()
    expect(await events(s, u.task_id as string)).toHaveLength(2)
    expect(await events(s, k.task_id as string)).toHaveLength(1)
  })

  test('7. a burst of one key: accepted exactly once, whichever store takes it', async () => {
    const a = await isolate(s)
    const u = update({ idempotency_key: unique('burst') })
    const answers = await Promise.all(Array.from({ length: 60 }, () => a.post(u)))
    expect(answers.every((r) => r.res.status === 202)).toBe(true)
    expect(answers.reduce((n, r) => n + r.body.accepted, 0)).toBe(1)
    expect(answers.reduce((n, r) => n + r.body.duplicates, 0)).toBe(59)
    await a.flush()
    expect(await events(s, u.task_id as string)).toHaveLength(1)
  })

  test('8. a key re-used for a different update: 422, nothing of the request accepted', async () => {
    const a = await isolate(s)
    const key = unique('reuse')
    const u = update({ idempotency_key: key })
    expect((await a.post(u)).body.accepted).toBe(1)
    const fresh = update()
    const { res, body } = await a.post({
      updates: [fresh, { ...u, progress: 99 }],
    })
    expect(res.status).toBe(422)
    expect(body.code).toBe('idempotency_key_reused')
    expect(body.errors).toEqual([
      { path: 'updates.1.idempotency_key', message: 'Already used for a different update' },
    ])
    // The same update again (another spelling of the same instant) is a duplicate, not a re-use.
    const same = { ...u, occurred_at: u.occurred_at.replace('Z', '+00:00') }
    expect((await a.post(same)).body).toMatchObject({ accepted: 0, duplicates: 1 })
    // The header form.
    const header = await a.post({ ...update(), task_id: u.task_id }, { 'Idempotency-Key': key })
    expect(header.res.status).toBe(422)
    expect(header.body.errors[0].path).toBe('Idempotency-Key')
    await a.flush()
    expect(await events(s, fresh.task_id as string)).toEqual([])
    expect(await state(s, u.task_id as string)).toMatchObject({ progress: 10 })
  })

  test('8. a burst re-using one key with different updates: one accepted, the rest 422', async () => {
    const a = await isolate(s)
    const key = unique('race')
    const u = update({ idempotency_key: key })
    const answers = await Promise.all(
      Array.from({ length: 50 }, (_, i) => a.post({ ...u, progress: i })),
    )
    const statuses = answers.map((r) => r.res.status).sort()
    expect(statuses.filter((x) => x === 202)).toHaveLength(1)
    expect(statuses.filter((x) => x === 422)).toHaveLength(49)
    await a.flush()
    expect(await events(s, u.task_id as string)).toHaveLength(1)
  })

  // With the buffer only: Redis hanging, answering late, dropping out and coming back.
  if (s.hasRedis) {
    test('5. Redis hanging: 40 concurrent writes each commit directly and answer 202', async () => {
      const a = await isolate(s, { REDIS_TIMEOUT_MS: '300', ...PATIENT })
      const updates = Array.from({ length: 40 }, () => update())
      await s.redis.setFaults({ hang: true })
      let answers: { res: Response; body: Record<string, unknown> }[]
      try {
        answers = await Promise.all(updates.map((u) => a.post(u)))
      } finally {
        await s.redis.clearFaults()
      }
      for (const { res, body } of answers) {
        expect(res.status).toBe(202)
        expect(res.headers.get('x-request-id')).toBeTruthy()
        expect(body).toMatchObject({ accepted: 1, status: 'committed' })
      }
      for (const u of updates) expect(await events(s, u.task_id as string)).toHaveLength(1)
    })

    test('6. Postgres down and Redis answering too late: 503 outcome_unknown; the retry is a duplicate', async () => {
      const a = await isolate(s, {
        REDIS_TIMEOUT_MS: '200',
        DATABASE_TIMEOUT_MS: '500',
        ...PATIENT,
      })
      // Warm: the buffer's script is loaded, so the late append runs as sent.
      expect((await a.post(update())).res.status).toBe(202)
      const u = update({ idempotency_key: unique('late') })
      await s.neon.setFaults({ refuse: true })
      await s.redis.setFaults({ latencyMs: 600 })
      try {
        const { res, body } = await a.post(u)
        expect(res.status).toBe(503)
        expect(res.headers.get('retry-after')).toMatch(/^\d+$/)
        expect(body.code).toBe('outcome_unknown')
        expect(body.detail).toMatch(/same idempotency key/)
        // The append lands after the app gave up on it (the proxy forwards it 600 ms late).
        await sleep(900)
      } finally {
        await s.neon.clearFaults()
        await s.redis.clearFaults()
      }
      const retry = await a.post(u)
      expect(retry.res.status).toBe(202)
      expect(retry.body).toMatchObject({ accepted: 0, duplicates: 1 })
      await a.flush()
      expect(await events(s, u.task_id as string)).toHaveLength(1)
    })

    test('7. one dedupe truth: a key committed directly is a duplicate via Redis, in any isolate', async () => {
      const env = { REDIS_KEY_PREFIX: `t:${unique('shared')}:`, ...PATIENT }
      const a = await isolate(s, env)
      const u = update({ idempotency_key: unique('k') })
      await s.redis.setFaults({ refuse: true })
      let first: { res: Response; body: Record<string, unknown> }
      try {
        first = await a.post(u)
      } finally {
        await s.redis.clearFaults()
      }
      expect(first.body).toMatchObject({ accepted: 1, status: 'committed' })
      const committed = (await a.batch(first.body.batch_id as string)).body
      expect(committed).toMatchObject({ status: 'committed' })
      // Re-sent through Redis, here and in another isolate of the same deployment.
      expect((await a.post(u)).body).toMatchObject({ accepted: 0, duplicates: 1, status: 'queued' })
      const b = await isolate(s, { ...env, ISOLATE: 'b' })
      expect((await b.post(u)).body).toMatchObject({ accepted: 0, duplicates: 1 })
      // A burst of re-sends, once the flush has copied the key into Redis' dedupe.
      await a.flush()
      const burst = await Promise.all(Array.from({ length: 40 }, () => b.post(u)))
      expect(burst.map((r) => r.body.accepted)).toEqual(Array(40).fill(0))
      expect(await events(s, u.task_id as string)).toHaveLength(1)
      // Once committed, always committed, with the same committed_at.
      expect((await a.batch(first.body.batch_id as string)).body).toEqual(committed)
    })

    test('7. batch status is monotonic: committed directly while an append lands late, one committed_at', async () => {
      const a = await isolate(s, { REDIS_TIMEOUT_MS: '200', ...PATIENT })
      expect((await a.post(update())).res.status).toBe(202) // warm the script
      const u = update({ idempotency_key: unique('mono') })
      await s.redis.setFaults({ latencyMs: 600 })
      let answer: { res: Response; body: Record<string, unknown> }
      try {
        answer = await a.post(u)
        await sleep(900) // the proxy forwards the append 600 ms late: it lands
      } finally {
        await s.redis.clearFaults()
      }
      expect(answer.body).toMatchObject({ accepted: 1, status: 'committed' })
      const id = answer.body.batch_id as string
      const before = (await a.batch(id)).body
      expect(before).toMatchObject({ status: 'committed', accepted: 1 })
      await a.flush() // writes the late copy: a duplicate
      expect((await a.batch(id)).body).toEqual(before)
      // With Postgres down the answer is "unknown", never "queued".
      await s.neon.setFaults({ refuse: true })
      try {
        const during = await a.batch(id)
        expect(during.res.status).toBe(503)
      } finally {
        await s.neon.clearFaults()
      }
      expect((await a.batch(id)).body).toEqual(before)
      expect(await events(s, u.task_id as string)).toHaveLength(1)
    })

    // Isolates of one deployment share its Redis prefix. The direct commit's copy of its keys
    // to Redis runs after the answer (waitUntil); each test decides whether it finds Redis up.
    test('8. across stores: a key committed directly, its copy to Redis failed, re-used through Redis: 422 (Postgres is asked)', async () => {
      const env = { REDIS_KEY_PREFIX: `t:${unique('p')}:`, ...PATIENT }
      const a = await isolate(s, env)
      const u = update({ idempotency_key: unique('cross') })
      await s.redis.setFaults({ refuse: true })
      try {
        expect((await a.post(u)).body).toMatchObject({ accepted: 1, status: 'committed' })
        await a.s.settle() // the copy to Redis ran, and failed
      } finally {
        await s.redis.clearFaults()
      }
      const other = await isolate(s, { ...env, ISOLATE: 'other' })
      const { res, body } = await other.post({ ...u, status: 'completed' })
      expect(res.status).toBe(422)
      expect(body.code).toBe('idempotency_key_reused')
      expect((await other.post(u)).body).toMatchObject({ accepted: 0, duplicates: 1 })
    })

    test('8b. across stores: once the copy reached Redis, Redis alone knows the key: 422', async () => {
      const env = { REDIS_KEY_PREFIX: `t:${unique('p')}:`, ...PATIENT }
      const a = await isolate(s, env)
      const u = update({ idempotency_key: unique('cross') })
      await s.redis.setFaults({ refuse: true })
      try {
        expect((await a.post(u)).body).toMatchObject({ accepted: 1, status: 'committed' })
        await a.s.settle()
      } finally {
        await s.redis.clearFaults()
      }
      await a.flush() // its sync copies the direct batch's keys to Redis
      const other = await isolate(s, { ...env, ISOLATE: 'other' })
      const { res, body } = await other.post({ ...u, status: 'completed' })
      expect(res.status).toBe(422)
      expect(body.code).toBe('idempotency_key_reused')
    })
  }
})

describe(`dead letters (${runtime})`, () => {
  test.runIf(buffered.hasRedis)(
    '2. an item an older version buffered that Lua cannot decode is dead-lettered, never lost',
    async () => {
      const s = buffered
      const a = await isolate(s)
      const prefix = a.s.env.REDIS_KEY_PREFIX!
      const id = crypto.randomUUID()
      const batchId = crypto.randomUUID()
      const now = Date.now()
      // As the version before storable input wrote it: a lone surrogate escape in task_id.
      const item = `{"id":"${id}","batchId":"${batchId}","agentId":"demo-agent","idempotencyKey":"legacy-${id}","userId":"demo-user-1","taskId":"t\\udfff","status":"in_progress","progress":10,"data":null,"occurredAt":"${isoAgo(5000)}","receivedAt":${now},"g":"demo-user-1\\u0000t\\udfff"}`
      await redis(s, 'HSET', `${prefix}progress:items`, id, item)
      await redis(s, 'ZADD', `${prefix}progress:ready`, String(now), id)
      await redis(
        s,
        'HSET',
        `${prefix}progress:batch:${batchId}`,
        'agent',
        'demo-agent',
        'accepted',
        '1',
        'duplicates',
        '0',
        'pending',
        '1',
        'created_at',
        String(now),
      )
      const valid = update()
      await a.post(valid)
      const report = await a.flush()
      expect(report).toMatchObject({ remaining: 0, dead_letters: 1 })
      expect(await redis(s, 'HGET', `${prefix}progress:dead`, id)).toBe(item)
      expect(
        JSON.parse(String(await redis(s, 'HGET', `${prefix}progress:dead-why`, id))),
      ).toMatchObject({ kind: 'undecodable' })
      expect((await a.batch(batchId)).body).toMatchObject({ status: 'queued', dead_letters: 1 })
      expect(await events(s, valid.task_id as string)).toHaveLength(1)
      const health = await a.health()
      expect(health.health.alerts.map((x: { id: string }) => x.id)).toContain(
        'progress_dead_letters',
      )
    },
  )
})
