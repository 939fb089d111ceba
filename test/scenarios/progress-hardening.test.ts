// Progress after the first outside attack (/work/notes/attack-1.md): idempotency keys across
// agents and stores, keys Redis has forgotten, data kept as sent, one agent against the shared
// buffer, honest batch status. In both runtimes; each case says which finding it covers.
import { describe, expect, test } from 'vitest'
import { sql } from '../../src/db/client.ts'
import { bearer, getToken, jsonPost } from '../support/agents.ts'
import { type Scenario, scenario } from '../support/scenario.ts'

const PROGRESS = '/api/v1/agent/progress'

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
async function isolate(env: Record<string, string>, agentId?: string) {
  const i = s.withEnv(env)
  const auth = bearer((await getToken(i, agentId)).access_token)
  await i.settle()
  return {
    s: i,
    auth,
    async post(body: unknown, headers: Record<string, string> = {}) {
      const res = await i.fetch(PROGRESS, jsonPost(body, { ...auth, ...headers }))
      return { res, body: await res.json() }
    },
    async batch(id: string) {
      const res = await i.fetch(`${PROGRESS}/batches/${id}`, { headers: auth })
      return { res, body: await res.json() }
    },
    async flush() {
      await i.settle()
      const res = await i.fetch('/api/v1/internal/flush', {
        method: 'POST',
        headers: { Authorization: `Bearer ${s.env.CRON_SECRET}` },
      })
      expect(res.status).toBe(200)
      await i.settle()
      return (await res.json()) as { flushed: number; remaining: number; dead_letters: number }
    },
    async health() {
      const res = await i.fetch('/api/v1/agent/health', { method: 'POST', headers: auth })
      return res.json()
    },
  }
}

const prefix = () => ({ REDIS_KEY_PREFIX: `t:${unique('p')}:` })

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
