// POST /api/v1/agent/progress and GET …/batches/{id}, in both runtimes.
import { describe, expect, test } from 'vitest'
import type { FaultPlan } from '../../local/faults.ts'
import { sql } from '../../src/db/client.ts'
import { bearer, DEMO_AGENT_2, getToken, jsonPost } from '../support/agents.ts'
import { scenario } from '../support/scenario.ts'

const s = await scenario()
const PROGRESS = '/api/v1/agent/progress'
const auth = bearer((await getToken(s)).access_token)
const isoAgo = (ms: number) => new Date(Date.now() - ms).toISOString()
let task = 0
const newTask = () => `task-${s.runtime}-${++task}-${Math.random().toString(36).slice(2, 8)}`

const update = (over: Record<string, unknown> = {}) => ({
  user_id: 'demo-user-1',
  task_id: newTask(),
  status: 'in_progress',
  progress: 10,
  occurred_at: isoAgo(1000),
  ...over,
})

async function post(body: unknown, headers: Record<string, string> = {}) {
  const res = await s.fetch(PROGRESS, jsonPost(body, { ...auth, ...headers }))
  return { res, body: await res.json() }
}

async function flush() {
  await s.settle()
  const res = await s.fetch('/api/v1/internal/flush', {
    method: 'POST',
    headers: { Authorization: `Bearer ${s.env.CRON_SECRET}` },
  })
  expect(res.status).toBe(200)
  return res.json() as Promise<{ flushed: number; remaining: number }>
}

async function state(taskId: string) {
  const rows = await s
    .db()
    .query<{ status: string; progress: number; occurred_at: Date }>(
      sql`SELECT status, progress, occurred_at FROM progress_state WHERE user_id = 'demo-user-1' AND task_id = ${taskId}`,
    )
  return rows[0]
}

async function events(taskId: string) {
  const rows = await s
    .db()
    .query<{ n: number }>(
      sql`SELECT count(*)::int AS n FROM progress_events WHERE task_id = ${taskId}`,
    )
  return rows[0]?.n ?? 0
}

describe(`progress writes (${s.runtime})`, () => {
  test('one update: 202, Location, durable, and applied once flushed', async () => {
    const u = update()
    const { res, body } = await post(u)
    expect(res.status).toBe(202)
    expect(body).toMatchObject({
      accepted: 1,
      duplicates: 0,
      status: s.hasRedis ? 'queued' : 'committed',
    })
    expect(res.headers.get('location')).toBe(`/api/v1/agent/progress/batches/${body.batch_id}`)
    await flush()
    expect(await state(u.task_id)).toMatchObject({ status: 'in_progress', progress: 10 })
    const batch = await s.fetch(res.headers.get('location')!, { headers: auth })
    expect(batch.status).toBe(200)
    expect(await batch.json()).toMatchObject({
      batch_id: body.batch_id,
      status: 'committed',
      accepted: 1,
    })
  })

  test('the same update sent N times (same key) is one event and one state change', async () => {
    const u = update({ idempotency_key: `key-${newTask()}` })
    const answers = []
    for (let i = 0; i < 4; i++) answers.push((await post(u)).body)
    expect(answers.map((a) => a.accepted)).toEqual([1, 0, 0, 0])
    expect(answers.map((a) => a.duplicates)).toEqual([0, 1, 1, 1])
    await flush()
    expect(await events(u.task_id)).toBe(1)
  })

  test('without a key, a retried identical request is still a duplicate (derived key)', async () => {
    const u = update()
    expect((await post(u)).body.accepted).toBe(1)
    expect((await post(u)).body).toMatchObject({ accepted: 0, duplicates: 1 })
    expect((await post({ ...u, progress: 11 })).body.accepted).toBe(1) // different content
  })

  test('the Idempotency-Key header applies to a single update', async () => {
    const u = update()
    const key = `hdr-${newTask()}`
    expect((await post(u, { 'Idempotency-Key': key })).body.accepted).toBe(1)
    expect((await post(u, { 'Idempotency-Key': key })).body.duplicates).toBe(1)
    // The same key with a different update is a re-use (CONTRACT.md v2), not a duplicate.
    const reused = await post({ ...u, progress: 50 }, { 'Idempotency-Key': key })
    expect(reused.res.status).toBe(422)
    expect(reused.body.code).toBe('idempotency_key_reused')
    const onBatch = await post({ updates: [update()] }, { 'Idempotency-Key': 'x' })
    expect(onBatch.res.status).toBe(400)
  })

  test('Idempotency-Key as the draft standard sends it (a quoted sf-string) is the same key as bare', async () => {
    const u = update()
    const key = `sf-${newTask()}`
    expect((await post(u, { 'Idempotency-Key': `"${key}"` })).body.accepted).toBe(1)
    // The retry with the key in the body, or bare in the header: a duplicate, not a second event.
    expect((await post({ ...u, idempotency_key: key })).body.duplicates).toBe(1)
    expect((await post(u, { 'Idempotency-Key': key })).body.duplicates).toBe(1)
    for (const bad of ['"unterminated', '"a"b"', '"tab\there"']) {
      const res = await post(u, { 'Idempotency-Key': bad })
      expect(res.res.status, bad).toBe(400)
    }
  })

  test('a batch of updates to one task aggregates; out-of-order arrival never regresses state', async () => {
    const taskId = newTask()
    const at = (s: number) => isoAgo(60_000 - s * 1000)
    const { body } = await post({
      updates: [
        update({ task_id: taskId, progress: 30, occurred_at: at(3) }),
        update({ task_id: taskId, progress: 50, status: 'in_progress', occurred_at: at(5) }),
        update({ task_id: taskId, progress: 10, occurred_at: at(1) }),
      ],
    })
    expect(body).toMatchObject({ accepted: 3, duplicates: 0 })
    await flush()
    expect(await state(taskId)).toMatchObject({ progress: 50 })
    expect(await events(taskId)).toBe(3)
    // An older update arriving later changes nothing.
    await post(update({ task_id: taskId, progress: 99, status: 'completed', occurred_at: at(4) }))
    await flush()
    expect(await state(taskId)).toMatchObject({ progress: 50, status: 'in_progress' })
    // A newer one does.
    await post(update({ task_id: taskId, progress: 100, status: 'completed', occurred_at: at(6) }))
    await flush()
    expect(await state(taskId)).toMatchObject({ progress: 100, status: 'completed' })
  })

  test('a flush invalidates the user’s cached context', async () => {
    const reader = bearer((await getToken(s)).access_token)
    const path = '/api/v1/agent/users/demo-user-1/context'
    await s.fetch(path, { headers: reader })
    expect((await s.fetch(path, { headers: reader })).headers.get('x-cache')).toBe('HIT')
    const taskId = newTask()
    await post(update({ task_id: taskId, progress: 77 }))
    await flush()
    const after = await s.fetch(path, { headers: reader })
    expect(after.headers.get('x-cache')).toBe('MISS')
    const body = await after.json()
    expect(body.progress).toContainEqual(expect.objectContaining({ task_id: taskId, progress: 77 }))
  })

  test.runIf(s.hasRedis)(
    'ten updates to one (user, task) trigger a flush by themselves',
    async () => {
      const taskId = newTask()
      await post({
        updates: Array.from({ length: 10 }, (_, i) =>
          update({ task_id: taskId, progress: i, occurred_at: isoAgo(10_000 - i) }),
        ),
      })
      await s.settle() // the flush runs through waitUntil
      expect(await events(taskId)).toBe(10)
      expect(await state(taskId)).toMatchObject({ progress: 9 })
    },
  )
})

describe(`progress validation and security (${s.runtime})`, () => {
  test.each([
    ['an empty object', {}, ['user_id', 'task_id', 'status', 'progress', 'occurred_at']],
    ['progress over 100', update({ progress: 101 }), ['progress']],
    ['a fractional progress', update({ progress: 10.5 }), ['progress']],
    ['an unknown status', update({ status: 'done' }), ['status']],
    ['a bad timestamp', update({ occurred_at: 'yesterday' }), ['occurred_at']],
    ['a timestamp without offset', update({ occurred_at: '2026-01-01T00:00:00' }), ['occurred_at']],
    [
      'a far-future timestamp',
      update({ occurred_at: new Date(Date.now() + 10 * 60_000).toISOString() }),
      ['occurred_at'],
    ],
    ['a long task id', update({ task_id: 'x'.repeat(129) }), ['task_id']],
    ['an empty key', update({ idempotency_key: '' }), ['idempotency_key']],
    ['data that is not an object', update({ data: [1, 2] }), ['data']],
    ['data over 4 KiB', update({ data: { pad: 'x'.repeat(4200) } }), ['data']],
    ['an unknown field', update({ extra: true }), ['extra']],
    ['an empty batch', { updates: [] }, ['updates']],
    ['101 updates', { updates: Array.from({ length: 101 }, () => update()) }, ['updates']],
    [
      'a bad update inside a batch',
      { updates: [update(), update(), update(), update({ progress: -1 })] },
      ['updates.3.progress'],
    ],
    ['a batch with an unknown field', { updates: [update()], note: 'x' }, ['note']],
  ])('%s → 400 with the paths', async (_name, body, paths) => {
    const { res, body: problem } = await post(body)
    expect(res.status).toBe(400)
    expect(problem.code).toBe('validation_failed')
    const got = problem.errors.map((e: { path: string }) => e.path)
    for (const p of paths) expect(got).toContain(p)
  })

  test('wrong content type → 415, malformed JSON → 400, nothing stored', async () => {
    const before = await s
      .db()
      .query<{ n: number }>(sql`SELECT count(*)::int AS n FROM progress_events`)
    const t = await s.fetch(PROGRESS, {
      method: 'POST',
      headers: { ...auth, 'Content-Type': 'text/plain' },
      body: '{}',
    })
    expect(t.status).toBe(415)
    const m = await s.fetch(PROGRESS, {
      method: 'POST',
      headers: { ...auth, 'Content-Type': 'application/json' },
      body: '{"user_id":',
    })
    expect(m.status).toBe(400)
    await flush()
    const after = await s
      .db()
      .query<{ n: number }>(sql`SELECT count(*)::int AS n FROM progress_events`)
    expect(after[0]?.n).toBe(before[0]?.n)
  })

  test('a foreign or unknown user anywhere in the batch: 404, and nothing is accepted', async () => {
    const taskId = newTask()
    for (const user of ['demo-user-3', 'nobody']) {
      const { res, body } = await post({
        updates: [update({ task_id: taskId }), update({ task_id: taskId, user_id: user })],
      })
      expect(res.status).toBe(404)
      expect(body.errors).toEqual([{ path: 'updates.1.user_id', message: 'No such user' }])
    }
    await flush()
    expect(await events(taskId)).toBe(0)
  })

  test('a batch’s grants cost one database query, however many users it names', async () => {
    // A new isolate: nothing cached yet.
    const cold = s.withEnv({ REDIS_KEY_PREFIX: `t:grants-${crypto.randomUUID()}:` })
    const coldAuth = bearer((await getToken(cold)).access_token)
    await cold.settle()
    await s.neon.resetStats()
    const users = ['demo-user-1', 'demo-user-2', 'demo-user-3', 'nobody']
    const res = await cold.fetch(
      PROGRESS,
      jsonPost({ updates: users.map((user_id) => update({ user_id })) }, coldAuth),
    )
    expect(res.status).toBe(404)
    expect((await res.json()).errors).toEqual([
      { path: 'updates.2.user_id', message: 'No such user' },
      { path: 'updates.3.user_id', message: 'No such user' },
    ])
    expect((await s.neon.stats()).requests).toBe(1)
  })

  test('a token without progress:write gets 403', async () => {
    const reader = bearer((await getToken(s, 'demo-agent', { scope: 'context:read' })).access_token)
    const res = await s.fetch(PROGRESS, jsonPost(update(), reader))
    expect(res.status).toBe(403)
  })

  test('a batch is visible only to the agent that created it', async () => {
    const { body } = await post(update())
    const other = bearer((await getToken(s, DEMO_AGENT_2)).access_token)
    const res = await s.fetch(`/api/v1/agent/progress/batches/${body.batch_id}`, { headers: other })
    expect(res.status).toBe(404)
    const unknown = await s.fetch(`/api/v1/agent/progress/batches/${crypto.randomUUID()}`, {
      headers: auth,
    })
    expect(unknown.status).toBe(404)
  })

  test('the flush route wants the cron secret', async () => {
    const cases: Record<string, string>[] = [
      {},
      { Authorization: 'Bearer wrong' },
      { Authorization: `Bearer ${(await getToken(s)).access_token}` },
    ]
    for (const headers of cases) {
      const res = await s.fetch('/api/v1/internal/flush', { method: 'POST', headers })
      expect(res.status).toBe(401)
    }
  })
})

describe(`progress when stores fail (${s.runtime})`, () => {
  test.runIf(s.hasRedis)('Redis down: updates commit straight to Postgres', async () => {
    await s.redis.setFaults({ refuse: true })
    try {
      const u = update()
      const { res, body } = await post(u)
      expect(res.status).toBe(202)
      expect(body).toMatchObject({ accepted: 1, status: 'committed' })
      expect(await state(u.task_id)).toMatchObject({ progress: 10 })
      const batch = await s.fetch(`/api/v1/agent/progress/batches/${body.batch_id}`, {
        headers: auth,
      })
      expect(await batch.json()).toMatchObject({ status: 'committed', accepted: 1 })
    } finally {
      await s.redis.clearFaults()
    }
  })

  test.runIf(s.hasRedis)(
    'Redis down: a queued batch’s status is unavailable (503), not "no such batch"',
    async () => {
      // Its own isolate: the test above may have left this one's Redis circuit open.
      const isolate = s.withEnv({ REDIS_KEY_PREFIX: `t:status-${crypto.randomUUID()}:` })
      const res = await isolate.fetch(PROGRESS, jsonPost(update(), auth))
      expect((await res.json()).status).toBe('queued')
      await s.redis.setFaults({ refuse: true })
      try {
        const batch = await isolate.fetch(res.headers.get('location')!, { headers: auth })
        expect(batch.status).toBe(503)
        expect(batch.headers.get('retry-after')).toMatch(/^\d+$/)
      } finally {
        await s.redis.clearFaults()
      }
    },
  )

  test.runIf(s.hasRedis).each<[string, FaultPlan]>([
    ['hanging', { hang: true }],
    // Slower than the timeout: the append lands in Redis after the app has given up on it.
    ['answering too late', { latencyMs: 600 }],
  ])('Redis %s: the update commits directly, and is applied once', async (_name, plan) => {
    const slow = s.withEnv({
      REDIS_KEY_PREFIX: `t:slow-${crypto.randomUUID()}:`,
      REDIS_TIMEOUT_MS: '200',
      // One window for the whole test: the agent's lease taken below lasts through it.
      RATE_LIMIT_REQUESTS_WINDOW_SECONDS: '86400',
      BREAKER_CONSECUTIVE_FAILURES: '1000',
      BREAKER_FAILURE_RATE_PERCENT: '100',
      BREAKER_MINIMUM_CALLS: '100',
      BREAKER_WINDOW_SIZE: '100',
    })
    const slowAuth = bearer((await getToken(slow)).access_token)
    const drain = async () => {
      await slow.settle()
      const res = await slow.fetch('/api/v1/internal/flush', {
        method: 'POST',
        headers: { Authorization: `Bearer ${s.env.CRON_SECRET}` },
      })
      expect(res.status).toBe(200)
      return (await res.json()) as { flushed: number }
    }
    // Warmed up and drained: the buffer's script is loaded (a late append runs as sent), the
    // agent's limit holds a lease (a window's first request takes one unit, the next a lease),
    // so the append is the only Redis call under the fault, and anything flushed below is
    // this test's update.
    for (let i = 0; i < 2; i++) {
      expect((await slow.fetch(PROGRESS, jsonPost(update(), slowAuth))).status).toBe(202)
    }
    await drain()

    const u = update({ idempotency_key: `slow-${crypto.randomUUID()}` })
    await s.redis.setFaults(plan)
    await s.redis.resetStats()
    let res: Response
    try {
      res = await slow.fetch(PROGRESS, jsonPost(u, slowAuth))
      expect(res.status).toBe(202)
      expect(await res.json()).toMatchObject({ accepted: 1, status: 'committed' })
      if (!plan.hang) {
        // Wait for the late append to go through (the proxy counts it as it forwards it).
        for (let i = 0; i < 100 && (await s.redis.stats()).executed === 0; i++) {
          await new Promise((r) => setTimeout(r, 50))
        }
        await new Promise((r) => setTimeout(r, 100))
      }
    } finally {
      await s.redis.clearFaults()
    }
    // The late append is in the buffer too: its flush writes nothing twice.
    expect((await drain()).flushed).toBe(plan.hang ? 0 : 1)
    expect(await events(u.task_id)).toBe(1)
    expect(await state(u.task_id)).toMatchObject({ progress: 10 })
  })

  test('neither store reachable: 503 with Retry-After, nothing accepted', async () => {
    // A token checked moments ago (REVOCATION_CHECK_TTL_MS), so the request reaches the
    // progress stores: a token nothing can check is refused earlier (503 auth_unavailable).
    const iso = s.withEnv({ REVOCATION_CHECK_TTL_MS: '60000', ISOLATE: 'neither' })
    const isoAuth = bearer((await getToken(iso)).access_token)
    expect((await iso.fetch(PROGRESS, jsonPost(update(), isoAuth))).status).toBe(202)
    await iso.settle()
    await s.neon.setFaults({ refuse: true })
    if (s.hasRedis) await s.redis.setFaults({ refuse: true })
    const u = update()
    try {
      const res = await iso.fetch(PROGRESS, jsonPost(u, isoAuth))
      const body = await res.json()
      expect(res.status).toBe(503)
      expect(res.headers.get('retry-after')).toMatch(/^\d+$/)
      // Node's fetch says a connection was refused; workerd reports every lost connection
      // alike, so there a refusal cannot be told from a drop after sending: not certain.
      expect(body.code).toBe(s.runtime === 'edge' ? 'progress_unavailable' : 'outcome_unknown')
    } finally {
      await s.neon.clearFaults()
      if (s.hasRedis) await s.redis.clearFaults()
    }
    // Nothing reached Postgres. (No flush here: the Redis breaker may still be open from the
    // outage, and the request was refused before anything was buffered.)
    expect(await events(u.task_id)).toBe(0)
  })

  test.runIf(s.hasRedis)(
    'a full buffer never grows: what finds no room is committed directly, or refused if Postgres cannot take it',
    async () => {
      const tight = s.withEnv({
        PROGRESS_BUFFER_MAX_DEPTH: '100',
        PROGRESS_BUFFER_AGENT_SHARE_PERCENT: '100',
        REDIS_KEY_PREFIX: `t:full-${Math.random()}:`.replace('.', ''),
      })
      const tightAuth = bearer((await getToken(tight)).access_token)
      const batch = { updates: Array.from({ length: 100 }, () => update()) }
      const filled = await tight.fetch(PROGRESS, jsonPost(batch, tightAuth))
      expect(await filled.json()).toMatchObject({ accepted: 100, status: 'queued' })
      const over = await tight.fetch(PROGRESS, jsonPost(update(), tightAuth))
      expect(await over.json()).toMatchObject({ accepted: 1, status: 'committed' })
      await s.neon.setFaults({ refuse: true })
      try {
        const refused = await tight.fetch(PROGRESS, jsonPost(update(), tightAuth))
        expect(refused.status).toBe(503)
        expect(refused.headers.get('retry-after')).toMatch(/^\d+$/)
        // Workers cannot tell a refused connection from one dropped after sending.
        expect((await refused.json()).code).toBe(
          s.runtime === 'edge' ? 'progress_unavailable' : 'outcome_unknown',
        )
      } finally {
        await s.neon.clearFaults()
      }
      await tight.settle()
    },
  )
})
