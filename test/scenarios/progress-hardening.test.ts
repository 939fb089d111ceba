// Progress after the first outside attack (/work/notes/attack-1.md): idempotency keys across
// agents and stores, keys Redis has forgotten, data kept as sent, one agent against the shared
// buffer, honest batch status. In both runtimes; each case says which finding it covers.
import { describe, expect, test } from 'vitest'
import { sql } from '../../src/db/client.ts'
import { DEMO_AGENT } from '../support/agents.ts'
import { progressIsolate } from '../support/progress-isolate.ts'
import { type Scenario, scenario } from '../support/scenario.ts'

const PROGRESS = '/api/v1/agent/progress'
// Breakers that an outage of a few requests does not open (each test sets its own faults).
const PATIENT = {
  BREAKER_CONSECUTIVE_FAILURES: '1000',
  BREAKER_FAILURE_RATE_PERCENT: '100',
  BREAKER_MINIMUM_CALLS: '100',
  BREAKER_WINDOW_SIZE: '100',
}

const s = await scenario()
let counter = 0
const unique = (label: string) =>
  `${label}-${s.runtime}-${++counter}-${crypto.randomUUID().slice(0, 8)}`
const isoAgo = (ms: number) => new Date(Date.now() - ms).toISOString()
const update = (over: Record<string, unknown> = {}) => ({
  user_id: 'demo-user-1',
  task_id: unique('task'),
  status: 'in_progress',
  progress: 10,
  occurred_at: isoAgo(60_000),
  ...over,
})

/** An agent of its own, granted `users`, authenticating with the environment's secret. */
async function agent(id: string, users: string[] = ['demo-user-1']) {
  const db = s.db()
  await db.query(
    sql`INSERT INTO agents (id, allowed_scopes) VALUES (${id}, '{context:read,progress:write}')
        ON CONFLICT (id) DO NOTHING`,
  )
  for (const user of users) {
    await db.query(
      sql`INSERT INTO agent_user_grants (agent_id, user_id) VALUES (${id}, ${user})
          ON CONFLICT DO NOTHING`,
    )
  }
  return id
}

/** One "isolate": its own services over the scenario (`env` decides the Redis prefix). */
const isolate = (env: Record<string, string>, agentId?: string) => progressIsolate(s, env, agentId)

const prefix = () => ({ REDIS_KEY_PREFIX: `t:${unique('p')}:` })

async function state(taskId: string) {
  const rows = await s
    .db()
    .query<{ progress: number; agent_id: string }>(
      sql`SELECT progress, agent_id FROM progress_state WHERE task_id = ${taskId}`,
    )
  return rows[0]
}

/** A command to the scenario's Redis, through the Upstash stand-in (as Upstash's REST API). */
async function redis(...command: string[]): Promise<unknown> {
  const res = await fetch(s.env.UPSTASH_REDIS_REST_URL!, {
    method: 'POST',
    headers: { Authorization: `Bearer ${s.env.UPSTASH_REDIS_REST_TOKEN}` },
    body: JSON.stringify(command),
  })
  return ((await res.json()) as { result: unknown }).result
}

async function events(sc: Scenario, taskId: string) {
  return sc.db().query<{ agent_id: string; key: string; progress: number; data: string | null }>(
    sql`SELECT agent_id, idempotency_key AS key, progress, data::text AS data
          FROM progress_events WHERE task_id = ${taskId} ORDER BY id`,
  )
}

describe.runIf(s.hasRedis)(`idempotency keys are per agent (${s.runtime})`, () => {
  test('F5: agent "x:2" with key K and agent "x" with key "2:K" are strangers', async () => {
    const env = prefix()
    const base = await agent(unique('colon'))
    const colon = await agent(`${base}:2`)
    const a = await isolate(env, base)
    const b = await isolate(env, colon)
    const k = unique('k')
    const x = update({ idempotency_key: `2:${k}`, progress: 100, status: 'completed' })
    const y = update({ idempotency_key: k, progress: 5 })
    expect((await a.post(x)).body).toMatchObject({ accepted: 1, duplicates: 0 })
    // Another update under "the same" Redis key: not a re-use, and the same content as the
    // other agent's: not a duplicate either.
    expect((await b.post(y)).body).toMatchObject({ accepted: 1, duplicates: 0 })
    expect((await b.post({ ...x, idempotency_key: `${k}-x` })).res.status).toBe(202)
    expect((await b.post({ ...x, idempotency_key: k })).res.status).toBe(422)
    await a.flush()
    const keysOf = async (task: unknown) =>
      (await events(s, task as string)).map((e) => `${e.agent_id} ${e.key}`).sort()
    expect(await keysOf(y.task_id)).toEqual([`${colon} ${k}`])
    expect(await keysOf(x.task_id)).toEqual([`${base} 2:${k}`, `${colon} ${k}-x`].sort())
  })
})

describe.runIf(s.hasRedis)(`a 202 is never undone at flush time (${s.runtime})`, () => {
  test('F3: a key buffered by one isolate, then re-used at another while Redis refuses: both 202s stand, both are events, no dead letter', async () => {
    const env = { ...prefix(), ...PATIENT }
    const a = await isolate(env)
    // Another isolate: the same Redis prefix, its own services (any other variable makes one).
    const b = await isolate({ ...env, ISOLATE: 'b' })
    const key = unique('k')
    const x = update({ idempotency_key: key, progress: 11, occurred_at: isoAgo(120_000) })
    const first = await a.post(x)
    expect(first.body).toMatchObject({ accepted: 1, status: 'queued' })
    await s.redis.setFaults({ refuse: true })
    let second: Awaited<ReturnType<typeof a.post>>
    try {
      // Redis holds the key and cannot be asked; Postgres has never seen it, nor has this
      // isolate: a 202.
      second = await b.post({
        ...x,
        progress: 99,
        status: 'completed',
        occurred_at: isoAgo(60_000),
      })
    } finally {
      await s.redis.clearFaults()
    }
    expect(second.res.status).toBe(202)
    expect(second.body).toMatchObject({ accepted: 1, status: 'committed' })
    const report = await a.flush()
    expect(report).toMatchObject({ remaining: 0, dead_letters: 0 })
    expect((await events(s, x.task_id as string)).map((e) => e.progress).sort()).toEqual([11, 99])
    expect(await state(x.task_id as string)).toMatchObject({ progress: 99 })
    expect((await a.batch(first.body.batch_id)).body).toMatchObject({ status: 'committed' })
    const health = await a.health()
    expect(health.status).not.toBe('unhealthy')
    expect(health.health.alerts.map((x: { id: string }) => x.id)).not.toContain(
      'progress_dead_letters',
    )
  })

  test('a key buffered by this isolate, re-used while Redis refuses or hangs: 422, one event, as the same update a duplicate of one event', async () => {
    for (const fault of [{ refuse: true }, { hang: true }] as const) {
      const a = await isolate({ ...prefix(), ...PATIENT, REDIS_TIMEOUT_MS: '300' })
      const key = unique('k')
      const x = update({ idempotency_key: key, progress: 11, data: { n: 0 } })
      const first = await a.post(x)
      expect(first.body).toMatchObject({ accepted: 1, status: 'queued' })
      await s.redis.setFaults(fault)
      let other: Awaited<ReturnType<typeof a.post>>
      let same: Awaited<ReturnType<typeof a.post>>
      try {
        other = await a.post({ ...x, data: { n: 47 } })
        same = await a.post(x)
      } finally {
        await s.redis.clearFaults()
      }
      expect({ fault, status: other.res.status, code: other.body.code }).toEqual({
        fault,
        status: 422,
        code: 'idempotency_key_reused',
      })
      expect(same.res.status).toBe(202)
      // The instance knows it took this very update: a duplicate, as Redis would have said.
      expect(same.body).toMatchObject({ accepted: 0, duplicates: 1, status: 'committed' })
      expect(await a.flush()).toMatchObject({ remaining: 0, dead_letters: 0 })
      const recorded = await events(s, x.task_id as string)
      expect({ fault, data: recorded.map((e) => JSON.parse(e.data!)) }).toEqual({
        fault,
        data: [{ n: 0 }],
      })
    }
  })

  test('F3 + F4: a key Redis forgot, re-used with newer content, and another agent’s update of the task: all recorded, state is the latest', async () => {
    const env = prefix()
    const other = await agent(unique('other'), ['demo-user-1'])
    const a = await isolate(env)
    const b = await isolate(env, other)
    const task = unique('shared')
    const key = unique('k')
    const x = update({
      task_id: task,
      idempotency_key: key,
      progress: 10,
      occurred_at: isoAgo(300_000),
    })
    expect((await a.post(x)).res.status).toBe(202)
    expect(await a.flush()).toMatchObject({ dead_letters: 0 })
    // Redis forgets the key (PROGRESS_DEDUPE_TTL_MS; the draft lets a server expire keys).
    await redis('DEL', `${env.REDIS_KEY_PREFIX}progress:idem:${DEMO_AGENT}:${key}`)
    const reuse = await a.post({ ...x, progress: 50, occurred_at: isoAgo(1_000) })
    const fresh = await b.post(
      update({ task_id: task, progress: 40, occurred_at: isoAgo(100_000) }),
    )
    expect(reuse.body).toMatchObject({ accepted: 1, status: 'queued' })
    expect(fresh.body).toMatchObject({ accepted: 1, status: 'queued' })
    expect(await a.flush()).toMatchObject({ remaining: 0, dead_letters: 0 })
    const recorded = await events(s, task)
    expect(recorded.map((e) => e.progress).sort((p, q) => p - q)).toEqual([10, 40, 50])
    expect(await state(task)).toMatchObject({ progress: 50, agent_id: DEMO_AGENT })
    for (const [who, id] of [
      [a, reuse.body.batch_id],
      [b, fresh.body.batch_id],
    ] as const) {
      expect((await who.batch(id)).body).toMatchObject({ status: 'committed', accepted: 1 })
    }
    expect((await a.health()).status).not.toBe('unhealthy')
  })
})

describe.runIf(s.hasRedis)(
  `batches of duplicates have an honest, durable status (${s.runtime})`,
  () => {
    test('F11: queued while the update it repeats is buffered; committed in Postgres by the flush that writes it', async () => {
      const env = prefix()
      const a = await isolate(env)
      const u = update({ idempotency_key: unique('dup') })
      const first = await a.post(u)
      const second = await a.post(u)
      expect(first.body).toMatchObject({ accepted: 1, duplicates: 0, status: 'queued' })
      expect(second.body).toMatchObject({ accepted: 0, duplicates: 1, status: 'queued' })
      // The update it repeats is only buffered: not committed yet.
      expect((await a.batch(second.body.batch_id)).body).toMatchObject({
        status: 'queued',
        committed_at: null,
      })
      expect(await a.flush()).toMatchObject({ remaining: 0, dead_letters: 0 })
      const committed = (await a.batch(second.body.batch_id)).body
      expect(committed).toMatchObject({ status: 'committed', accepted: 0 })
      const rows = await s
        .db()
        .query<{ accepted: number; duplicates: number; committed_at: Date }>(
          sql`SELECT accepted, duplicates, committed_at FROM progress_batches WHERE id = ${second.body.batch_id}`,
        )
      expect(rows.map((r) => [r.accepted, r.duplicates])).toEqual([[0, 1]])
      expect(new Date(rows[0]!.committed_at).toISOString()).toBe(committed.committed_at)
      // Redis forgets batches after a week: Postgres answers the same.
      await redis('DEL', `${env.REDIS_KEY_PREFIX}progress:batch:${second.body.batch_id}`)
      expect((await a.batch(second.body.batch_id)).body).toEqual(committed)
      expect(await events(s, u.task_id as string)).toHaveLength(1)
    })
  },
)

describe.runIf(s.hasRedis)(`one agent cannot fill the shared buffer (${s.runtime})`, () => {
  test('F10: an agent past its share is committed directly, or refused alone; others still buffer', async () => {
    // The bound at its minimum, shared 25 % per agent: 25 items each.
    const env = { ...prefix(), PROGRESS_BUFFER_MAX_DEPTH: '100', ...PATIENT }
    const other = await agent(unique('victim'), ['demo-user-1'])
    const a = await isolate(env)
    const b = await isolate(env, other)
    // Grants are cached by a first update each (they are checked before anything is taken).
    expect((await a.post(update())).body).toMatchObject({ status: 'queued' })
    expect((await b.post(update())).body).toMatchObject({ status: 'queued' })
    // Past its share with Postgres up: committed straight away.
    const flood = { updates: Array.from({ length: 30 }, () => update()) }
    expect((await a.post(flood)).body).toMatchObject({ accepted: 30, status: 'committed' })
    await s.neon.setFaults({ refuse: true })
    try {
      // Postgres down: the flooder is refused (nothing accepted) ...
      const refused = await a.post({ updates: Array.from({ length: 98 }, () => update()) })
      expect(refused.res.status).toBe(503)
      expect(refused.body.code).toBe(
        s.runtime === 'edge' ? 'progress_unavailable' : 'outcome_unknown',
      )
      // ... and every other agent still buffers.
      const victim = await b.post(update())
      expect(victim.res.status).toBe(202)
      expect(victim.body).toMatchObject({ status: 'queued' })
    } finally {
      await s.neon.clearFaults()
    }
    expect(await a.flush()).toMatchObject({ remaining: 0, dead_letters: 0 })
  })
})

describe(`data is stored exactly as sent (${s.runtime})`, () => {
  test('F6: big integers, number spellings, duplicate and integer-like keys, whitespace: byte for byte, in a batch and alone', async () => {
    const a = await isolate(prefix())
    const cases = [
      '{"n":12345678901234567890,"m":9007199254740993}',
      '{"a":1,"a":2}',
      '{"b":1,"2":2,"1":3}',
      '{"x":1.0,"y":-0,"z":1e2,"w":0.10}',
      '{ "s" : "\\u00e9\\/\\ud83d\\ude00" ,\n\t"l":[ ] }',
    ]
    const at = isoAgo(1000)
    const one = (task: string, data: string) =>
      `{"user_id":"demo-user-1","task_id":"${task}","status":"in_progress","progress":1,"occurred_at":"${at}","data" :${data}}`
    const tasks = cases.map(() => unique('as-sent'))
    const batch = await a.s.fetch(PROGRESS, {
      method: 'POST',
      headers: { ...a.auth, 'Content-Type': 'application/json' },
      body: `{"updates":[${cases.map((d, i) => one(tasks[i]!, d)).join(' ,\n')}]}`,
    })
    expect(batch.status).toBe(202)
    const single = unique('as-sent')
    const alone = await a.s.fetch(PROGRESS, {
      method: 'POST',
      headers: { ...a.auth, 'Content-Type': 'application/json' },
      body: one(single, cases[4]!),
    })
    expect(alone.status).toBe(202)
    await a.flush()
    for (const [task, data] of [...tasks.map((t, i) => [t, cases[i]!]), [single, cases[4]!]]) {
      expect((await events(s, task!)).map((e) => e.data)).toEqual([data])
    }
    // The 4 KiB bound is on the bytes as sent: padding counts.
    const padded = `{"k":1${' '.repeat(4096)}}`
    const over = await a.s.fetch(PROGRESS, {
      method: 'POST',
      headers: { ...a.auth, 'Content-Type': 'application/json' },
      body: one(unique('as-sent'), padded),
    })
    expect(over.status).toBe(400)
    expect((await over.json()).errors).toEqual([
      { path: 'data', message: 'Must be at most 4096 bytes as sent' },
    ])
    // A shadowed duplicate is stored too: it is held to the same rules.
    const shadowed = await a.s.fetch(PROGRESS, {
      method: 'POST',
      headers: { ...a.auth, 'Content-Type': 'application/json' },
      body: one(unique('as-sent'), '{"a":"\\u0000","a":"ok"}'),
    })
    expect(shadowed.status).toBe(400)
    expect((await shadowed.json()).errors.map((e: { path: string }) => e.path)).toEqual(['data.a'])
  })
})
