// Logs carry no request data (CONTRACT.md "Conventions"): a marked payload sent through every
// failure path — Redis refusing, hanging, erroring; Neon refusing, hanging, erroring — leaves
// its marker in no log line, at the most verbose level, in both runtimes.
import { describe, expect, test } from 'vitest'
import type { FaultPlan } from '../../local/faults.ts'
import { basic, bearer, getToken, jsonPost } from '../support/agents.ts'
import { randomSecret, scenario } from '../support/scenario.ts'

const s = await scenario()
const MARKER = `mark${randomSecret(8)}`
const iso = s.withEnv({
  LOG_LEVEL: 'debug',
  REDIS_TIMEOUT_MS: '200',
  DATABASE_TIMEOUT_MS: '300',
  HEALTH_CHECK_TIMEOUT_MS: '200',
  CONTEXT_CACHE_TTL_MS: '1',
  GRANT_CACHE_TTL_MS: '1',
  REDIS_KEY_PREFIX: `t:${randomSecret(6)}:`,
  ISOLATE: randomSecret(4),
})

/** Every request that carries the marker somewhere an upstream will see it. */
async function sendMarked(auth: Record<string, string>): Promise<number[]> {
  const statuses: number[] = []
  const send = async (path: string, init?: RequestInit) =>
    statuses.push((await iso.fetch(path, init)).status)
  await send(
    '/api/v1/agent/progress',
    jsonPost(
      {
        user_id: 'demo-user-1',
        task_id: `${MARKER}-task`,
        status: 'in_progress',
        progress: 10,
        occurred_at: new Date(Date.now() - 1000).toISOString(),
        data: { note: `${MARKER} personal details`, [MARKER]: [MARKER] },
      },
      { ...auth, 'Idempotency-Key': `${MARKER}-key` },
    ),
  )
  await send(
    '/api/v1/agent/progress',
    jsonPost(
      {
        updates: [
          {
            user_id: 'demo-user-2',
            task_id: `${MARKER}-batch`,
            status: 'completed',
            progress: 100,
            occurred_at: new Date(Date.now() - 1000).toISOString(),
            idempotency_key: `${MARKER}-k2`,
            data: { nested: { deep: MARKER } },
          },
        ],
      },
      auth,
    ),
  )
  await send(`/api/v1/agent/users/${MARKER}-user/context`, { headers: auth })
  await send('/api/v1/agent/users/demo-user-1/context', {
    headers: { ...auth, 'If-None-Match': MARKER },
  })
  await send(`/api/v1/agent/progress/batches/${crypto.randomUUID()}`, { headers: auth })
  await send('/api/v1/agent/token', jsonPost({ agent_id: `${MARKER}-agent`, agent_secret: MARKER }))
  await send(
    '/api/v1/agent/token',
    jsonPost(
      { grant_type: 'refresh_token', refresh_token: `rt_${MARKER}` },
      {
        Authorization: basic('demo-agent', MARKER),
      },
    ),
  )
  await send('/api/v1/agent/token/revoke', jsonPost({ token: `${MARKER}-jti` }, auth))
  await send('/api/v1/agent/health', jsonPost({ version: MARKER, details: { note: MARKER } }, auth))
  await send('/api/v1/internal/flush', {
    method: 'POST',
    headers: { Authorization: `Bearer ${iso.env.CRON_SECRET}` },
  })
  return statuses
}

const FAULTS: [string, 'redis' | 'neon', FaultPlan][] = [
  ['Redis refusing', 'redis', { refuse: true }],
  ['Redis hanging', 'redis', { hang: true }],
  ['Redis erroring', 'redis', { errorRate: 1 }],
  ['Neon refusing', 'neon', { refuse: true }],
  ['Neon hanging', 'neon', { hang: true }],
  ['Neon erroring', 'neon', { errorRate: 1 }],
]

describe(`logs carry no request data (${s.runtime})`, () => {
  const auth = getToken(iso).then((t) => bearer(t.access_token))

  test.each(FAULTS.filter(([, upstream]) => upstream === 'neon' || s.hasRedis))(
    '%s: the marker reaches no log line',
    async (_name, upstream, plan) => {
      const headers = await auth
      const before = s.logs().length
      await s[upstream].setFaults(plan)
      let statuses: number[]
      try {
        statuses = await sendMarked(headers)
      } finally {
        await s[upstream].clearFaults()
      }
      await iso.settle()
      const lines = s.logs().slice(before)
      // The paths were taken: something failed and was logged.
      expect(lines.some((l) => /"level":"(warn|error)"/.test(l))).toBe(true)
      expect(statuses.every((status) => status < 500 || status === 503)).toBe(true)
      const leaked = lines.filter((l) => l.includes(MARKER))
      expect(leaked).toEqual([])
    },
  )

  test('and with everything answering', async () => {
    const before = s.logs().length
    await sendMarked(await auth)
    await iso.settle()
    expect(
      s
        .logs()
        .slice(before)
        .filter((l) => l.includes(MARKER)),
    ).toEqual([])
  })
})
