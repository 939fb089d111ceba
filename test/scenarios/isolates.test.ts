// What one isolate does reaches the others through Redis within a few seconds: revocations
// and context invalidations. (Breaker state sharing is in breaker.test.ts.) Also the mock
// rung of the fallback ladder, development only.
import { describe, expect, test } from 'vitest'
import { bearer, decodeJwt, getToken, jsonPost } from '../support/agents.ts'
import { randomSecret, scenario } from '../support/scenario.ts'

const s = await scenario()
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const context = (user: string) => `/api/v1/agent/users/${user}/context`

function isolatePair() {
  const shared = {
    REDIS_KEY_PREFIX: `t:${randomSecret(6)}:`,
    REVOCATION_CHECK_TTL_MS: '200',
    CONTEXT_INVALIDATION_POLL_MS: '200',
  }
  return [s.withEnv({ ...shared, ISOLATE: 'a' }), s.withEnv({ ...shared, ISOLATE: 'b' })] as const
}

describe.runIf(s.hasRedis)(`across isolates (${s.runtime})`, () => {
  test('a token revoked in one isolate is refused by another within the check interval', async () => {
    const [a, b] = isolatePair()
    const token = (await getToken(a)).access_token
    expect((await b.fetch(context('demo-user-1'), { headers: bearer(token) })).status).toBe(200)
    const jti = String(decodeJwt(token).payload.jti)
    expect(
      (await a.fetch('/api/v1/agent/token/revoke', jsonPost({ token: jti }, bearer(token)))).status,
    ).toBe(200)
    await sleep(250) // REVOCATION_CHECK_TTL_MS: how long b trusts its last "not revoked"
    expect((await b.fetch(context('demo-user-1'), { headers: bearer(token) })).status).toBe(401)
  })

  test('a progress flush in one isolate invalidates the context cached by another', async () => {
    const [a, b] = isolatePair()
    const tokenA = bearer((await getToken(a)).access_token)
    const tokenB = bearer((await getToken(b)).access_token)
    await b.fetch(context('demo-user-2'), { headers: tokenB })
    expect(
      (await b.fetch(context('demo-user-2'), { headers: tokenB })).headers.get('x-cache'),
    ).toBe('HIT')

    const taskId = `cross-${randomSecret(4)}`
    const update = {
      user_id: 'demo-user-2',
      task_id: taskId,
      status: 'completed',
      progress: 100,
      occurred_at: new Date(Date.now() - 1000).toISOString(),
    }
    expect((await a.fetch('/api/v1/agent/progress', jsonPost(update, tokenA))).status).toBe(202)
    const flushed = await a.fetch('/api/v1/internal/flush', {
      method: 'POST',
      headers: { Authorization: `Bearer ${s.env.CRON_SECRET}` },
    })
    expect(flushed.status).toBe(200)
    await a.settle()

    // b picks the invalidation up on a request (polling in the background), then reloads.
    await sleep(250)
    await b.fetch(context('demo-user-2'), { headers: tokenB })
    await b.settle()
    const after = await b.fetch(context('demo-user-2'), { headers: tokenB })
    const body = await after.json()
    expect(body.progress).toContainEqual(
      expect.objectContaining({ task_id: taskId, progress: 100 }),
    )
  })
})

describe(`mock data (${s.runtime})`, () => {
  test('in development, CONTEXT_FALLBACK_MOCK answers mock data when the database is down', async () => {
    const dev = s.withEnv({ CONTEXT_FALLBACK_MOCK: 'true', ISOLATE: randomSecret(4) })
    const token = bearer((await getToken(dev)).access_token)
    // A progress write checks (and caches) the grant without caching the user's context, so
    // there is no stale entry to serve: the ladder reaches the mock rung.
    const update = {
      user_id: 'demo-user-2',
      task_id: 'mock-check',
      status: 'in_progress',
      progress: 1,
      occurred_at: new Date(Date.now() - 1000).toISOString(),
    }
    expect((await dev.fetch('/api/v1/agent/progress', jsonPost(update, token))).status).toBe(202)
    await s.neon.setFaults({ refuse: true })
    try {
      const res = await dev.fetch(context('demo-user-2'), { headers: token })
      expect(res.status).toBe(200)
      expect(await res.json()).toMatchObject({
        source: 'mock',
        degraded: true,
        user: { id: 'demo-user-2', display_name: 'Mock User' },
      })
    } finally {
      await s.neon.clearFaults()
    }
  })

  test('outside development, asking for mock data is a configuration error', async () => {
    const staging = s.withEnv({
      APP_ENV: 'staging',
      STAGING_AGENT_SECRET: randomSecret(),
      STAGING_JWT_SECRET: randomSecret(),
      CONTEXT_FALLBACK_MOCK: 'true',
    })
    const ready = await staging.fetch('/health/ready')
    expect(ready.status).toBe(503)
    expect(JSON.stringify(await ready.json())).not.toContain('Mock')
    expect(
      (
        await staging.fetch(
          '/api/v1/agent/token',
          jsonPost({ agent_id: 'demo-agent', agent_secret: 'x' }),
        )
      ).status,
    ).toBe(503)
  })
})

describe(`a cold isolate's first requests, all at once (${s.runtime})`, () => {
  test('60 at once on a fresh isolate: keys, driver and documents made by each for itself, all answered', async () => {
    // Nothing is shared between these requests but values: a request that awaited a promise
    // another one made would hang in workerd when that one ended first.
    const token = (await getToken(s)).access_token
    const cold = s.withEnv({ ISOLATE: randomSecret(4), REDIS_KEY_PREFIX: `t:${randomSecret(6)}:` })
    const paths = [context('demo-user-1'), context('demo-user-2'), '/openapi.json', '/docs']
    const responses = await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        cold.fetch(paths[i % paths.length]!, { headers: bearer(token) }),
      ),
    )
    const statuses = responses.map((r) => r.status)
    expect(statuses.filter((st) => st !== 200)).toEqual([])
    const documents = await Promise.all(
      responses.filter((_, i) => i % paths.length === 2).map((r) => r.text()),
    )
    expect(new Set(documents).size).toBe(1)
  })
})
