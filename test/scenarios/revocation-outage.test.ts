// Revocations that outlive a Redis outage (attack F2), in both runtimes: a 200 from the revoke
// endpoint means the token no longer works — in the isolate that revoked it whatever the stores
// do, and in every other isolate while Redis fails (Postgres answers then). When neither store
// can answer, a token not checked within REVOCATION_CHECK_TTL_MS is refused (fail closed).
import { describe, expect, test } from 'vitest'
import { bearer, getToken, jsonPost } from '../support/agents.ts'
import { randomSecret, scenario } from '../support/scenario.ts'

const s = await scenario()
const REVOKE = '/api/v1/agent/token/revoke'
const CONTEXT = '/api/v1/agent/users/demo-user-1/context'
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Isolates of one deployment (one Redis prefix), each with its own services. */
function deployment(extra: Record<string, string> = {}) {
  const shared = { REDIS_KEY_PREFIX: `t:${randomSecret(6)}:`, ...extra }
  return (name: string) => s.withEnv({ ...shared, ISOLATE: name })
}

const use = async (iso: ReturnType<ReturnType<typeof deployment>>, token: string) => {
  const res = await iso.fetch(CONTEXT, {
    headers: { ...bearer(token), 'Cache-Control': 'no-cache' },
  })
  return { status: res.status, body: await res.json(), retryAfter: res.headers.get('retry-after') }
}

describe.runIf(s.hasRedis)(`revocations outlive a Redis outage (${s.runtime})`, () => {
  test('revoked while Redis worked: refused by every isolate while Redis refuses', async () => {
    const isolate = deployment({ REVOCATION_CHECK_TTL_MS: '200' })
    const [a, b] = [isolate('a'), isolate('b')]
    const revoked = (await getToken(a)).access_token
    const kept = (await getToken(a)).access_token
    expect((await use(b, revoked)).status).toBe(200)
    const res = await a.fetch(REVOKE, jsonPost({ token: revoked }, bearer(kept)))
    expect(res.status).toBe(200)
    await sleep(1100) // past every cached answer ("revoked" is kept for at least a second)
    expect((await use(a, revoked)).status).toBe(401)
    expect((await use(b, revoked)).status).toBe(401)
    await s.redis.setFaults({ refuse: true })
    try {
      for (const iso of [a, b, isolate('cold')]) {
        expect((await use(iso, revoked)).status).toBe(401)
        expect((await use(iso, kept)).status).toBe(200)
      }
    } finally {
      await s.redis.clearFaults()
    }
  })

  test('Redis and Postgres both failing: recent answers hold, other tokens get 503, revoked stay refused', async () => {
    const isolate = deployment({ REVOCATION_CHECK_TTL_MS: '10000' })
    const a = isolate('a')
    const checked = (await getToken(a)).access_token
    const unchecked = (await getToken(a)).access_token
    const revoked = (await getToken(a)).access_token
    expect((await use(a, checked)).status).toBe(200)
    expect((await a.fetch(REVOKE, jsonPost({ token: revoked }, bearer(checked)))).status).toBe(200)
    await s.redis.setFaults({ refuse: true })
    await s.neon.setFaults({ refuse: true })
    try {
      // Checked within REVOCATION_CHECK_TTL_MS: served (the context degrades without Postgres).
      const served = await use(a, checked)
      expect(served.status).toBe(200)
      expect(served.body.degraded).toBe(true)
      // Never checked: nothing can say whether it was revoked.
      const closed = await use(a, unchecked)
      expect(closed.status).toBe(503)
      expect(closed.body.code).toBe('auth_unavailable')
      expect(Number(closed.retryAfter)).toBeGreaterThan(0)
      expect((await use(a, revoked)).status).toBe(401)
    } finally {
      await s.redis.clearFaults()
      await s.neon.clearFaults()
    }
    await a.settle()
  })
})
