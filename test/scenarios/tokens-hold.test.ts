// Tokens that hold (issue 2/8), in both runtimes: environments, client authentication on
// refresh, family revocation, time bounds, revocation hints, empty form values, revocations
// that cannot be evicted or switched off, and revoke answers that say what happened.
import { describe, expect, test } from 'vitest'
import {
  agentSecret,
  basic,
  bearer,
  DEMO_AGENT,
  DEMO_AGENT_2,
  decodeJwt,
  formPost,
  getToken,
  jsonPost,
} from '../support/agents.ts'
import { signWith } from '../support/keys.ts'
import { randomSecret, type Scenario, scenario } from '../support/scenario.ts'

const s = await scenario()
const TOKEN = '/api/v1/agent/token'
const REVOKE = '/api/v1/agent/token/revoke'
const CONTEXT = '/api/v1/agent/users/demo-user-1/context'
const secret = agentSecret(s)
const client = (sc: Scenario = s, id = DEMO_AGENT) => ({
  Authorization: basic(id, agentSecret(sc)),
})

function isolate(extra: Record<string, string | undefined> = {}): Scenario {
  return s.withEnv({
    REDIS_KEY_PREFIX: `t:${randomSecret(6)}:`,
    ISOLATE: randomSecret(4),
    ...extra,
  })
}
// Breakers that an outage of a few requests does not open (a test clears its own faults).
const PATIENT = {
  BREAKER_CONSECUTIVE_FAILURES: '1000',
  BREAKER_FAILURE_RATE_PERCENT: '100',
  BREAKER_MINIMUM_CALLS: '100',
  BREAKER_WINDOW_SIZE: '100',
}
const withoutRedis = (extra: Record<string, string> = {}) =>
  isolate({ UPSTASH_REDIS_REST_URL: undefined, UPSTASH_REDIS_REST_TOKEN: undefined, ...extra })

const refresh = (sc: Scenario, token: string, headers: Record<string, string> = client(sc)) =>
  sc.fetch(TOKEN, formPost({ grant_type: 'refresh_token', refresh_token: token }, headers))

describe(`refresh tokens hold (${s.runtime})`, () => {
  test('a staging refresh token never yields a production token on a shared database', async () => {
    const shared = { STAGING_JWT_SECRET: randomSecret(), PROD_JWT_SECRET: randomSecret() }
    const staging = isolate({ APP_ENV: 'staging', STAGING_AGENT_SECRET: randomSecret(), ...shared })
    const production = isolate({
      APP_ENV: 'production',
      PROD_AGENT_SECRET: randomSecret(),
      PUBLIC_URL: 'https://agent-api.test',
      ...shared,
    })
    const issued = await getToken(staging)
    const crossed = await refresh(production, issued.refresh_token)
    expect(crossed.status).toBe(400)
    expect((await crossed.json()).error).toBe('invalid_grant')
    // Untouched by the attempt: it still refreshes where it belongs.
    const home = await refresh(staging, issued.refresh_token)
    expect(home.status).toBe(200)
    expect((await home.json()).environment).toBe('staging')
  })

  test('a refresh without client authentication is refused (RFC 6749 §6), the token unspent', async () => {
    const issued = await getToken(s)
    for (const init of [
      formPost({ grant_type: 'refresh_token', refresh_token: issued.refresh_token }),
      jsonPost({ grant_type: 'refresh_token', refresh_token: issued.refresh_token }),
    ]) {
      const res = await s.fetch(TOKEN, init)
      expect(res.status).toBe(401)
      expect(res.headers.get('www-authenticate')).toBe('Basic realm="agent-api"')
      expect((await res.json()).error).toBe('invalid_client')
    }
    const wrong = await refresh(s, issued.refresh_token, {
      Authorization: basic(DEMO_AGENT, 'not-the-secret'),
    })
    expect(wrong.status).toBe(401)
    // JSON carries the client's credentials in the body, as its client-credentials form does.
    const json = await s.fetch(
      TOKEN,
      jsonPost({
        grant_type: 'refresh_token',
        refresh_token: issued.refresh_token,
        agent_id: DEMO_AGENT,
        agent_secret: secret,
      }),
    )
    expect(json.status).toBe(200)
  })

  test.each([
    ['with Redis', () => isolate()],
    ['without Redis', () => withoutRedis()],
  ])('revoking a refresh token revokes its family’s access tokens (%s)', async (_name, make) => {
    const iso = make()
    const issued = await getToken(iso)
    const next = await (await refresh(iso, issued.refresh_token)).json()
    // Both access tokens of the family work, then the (current) refresh token is revoked.
    for (const t of [issued.access_token, next.access_token]) {
      expect((await iso.fetch(CONTEXT, { headers: bearer(t) })).status).toBe(200)
    }
    const other = await getToken(iso) // another family: untouched
    const res = await iso.fetch(REVOKE, formPost({ token: next.refresh_token }, client(iso)))
    expect(res.status).toBe(200)
    for (const t of [issued.access_token, next.access_token]) {
      expect((await iso.fetch(CONTEXT, { headers: bearer(t) })).status).toBe(401)
    }
    expect((await iso.fetch(CONTEXT, { headers: bearer(other.access_token) })).status).toBe(200)
    expect((await refresh(iso, next.refresh_token)).status).toBe(400)
  })

  test('reuse of a spent refresh token revokes the family’s access tokens too', async () => {
    const issued = await getToken(s)
    const next = await (await refresh(s, issued.refresh_token)).json()
    expect((await s.fetch(CONTEXT, { headers: bearer(next.access_token) })).status).toBe(200)
    // The successor is used: presenting the spent token now is reuse, grace period or not.
    expect((await refresh(s, next.refresh_token)).status).toBe(200)
    const replay = await refresh(s, issued.refresh_token)
    expect(replay.status).toBe(400)
    for (const t of [issued.access_token, next.access_token]) {
      expect((await s.fetch(CONTEXT, { headers: bearer(t) })).status).toBe(401)
    }
  })

  test('access tokens carry their family as sid', async () => {
    const issued = await getToken(s)
    const { payload } = decodeJwt(issued.access_token)
    expect(payload.sid).toMatch(/^[0-9a-f-]{36}$/)
    const next = await (await refresh(s, issued.refresh_token)).json()
    expect(decodeJwt(next.access_token).payload.sid).toBe(payload.sid)
  })
})

describe(`access tokens are bounded in time (${s.runtime})`, () => {
  const sign = async (over: Record<string, unknown>) => {
    const t = Math.floor(Date.now() / 1000)
    return signWith(
      { jwk: s.env.DEV_JWT_SIGNING_KEY! },
      {
        iss: 'https://agent-api.test',
        aud: 'https://agent-api.test',
        sub: DEMO_AGENT,
        client_id: DEMO_AGENT,
        scope: 'context:read progress:write',
        env: 'development',
        jti: crypto.randomUUID(),
        iat: t,
        nbf: t,
        exp: t + 600,
        ...over,
      },
    )
  }
  const t = () => Math.floor(Date.now() / 1000)

  test.each([
    ['iat ten years ahead', () => ({ iat: t() + 10 * 365 * 86400 })],
    ['exp a century ahead', () => ({ exp: t() + 100 * 365 * 86400 })],
    ['a lifetime longer than the configured one', () => ({ exp: t() + 8 * 3600 + 60 })],
  ])('%s → 401', async (_name, over) => {
    const res = await s.fetch(CONTEXT, { headers: bearer(await sign(over())) })
    expect(res.status).toBe(401)
    expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"')
  })

  test('the control: the same token within the bounds is accepted', async () => {
    expect((await s.fetch(CONTEXT, { headers: bearer(await sign({})) })).status).toBe(200)
  })
})

describe(`revocation requests (${s.runtime})`, () => {
  test('the hint is only a hint: a refresh token hinted as an access token is revoked', async () => {
    const issued = await getToken(s)
    const res = await s.fetch(
      REVOKE,
      formPost({ token: issued.refresh_token, token_type_hint: 'access_token' }, client()),
    )
    expect(res.status).toBe(200)
    expect((await refresh(s, issued.refresh_token)).status).toBe(400)
    // And an access token hinted as a refresh token.
    const other = await getToken(s)
    const res2 = await s.fetch(
      REVOKE,
      jsonPost({ token: other.access_token, token_type_hint: 'refresh_token' }, client()),
    )
    expect(res2.status).toBe(200)
    expect((await s.fetch(CONTEXT, { headers: bearer(other.access_token) })).status).toBe(401)
  })

  test('empty form values are treated as omitted (RFC 6749 §3.2)', async () => {
    const withEmpty = await s.fetch(
      TOKEN,
      formPost({ grant_type: 'client_credentials', scope: '' }, client()),
    )
    expect(withEmpty.status).toBe(200)
    expect((await withEmpty.json()).scope).toBe('context:read progress:write')
    // Empty client_id/client_secret next to Basic: omitted, so not "credentials twice".
    const emptyPair = await s.fetch(
      TOKEN,
      formPost({ grant_type: 'client_credentials', client_id: '', client_secret: '' }, client()),
    )
    expect(emptyPair.status).toBe(200)
    const hint = await s.fetch(REVOKE, formPost({ token: 'x', token_type_hint: '' }, client()))
    expect(hint.status).toBe(200)
    const noGrant = await s.fetch(TOKEN, formPost({ grant_type: '' }, client()))
    expect(noGrant.status).toBe(400)
    expect((await noGrant.json()).error).toBe('invalid_request')
  })

  test('auth scheme names are case-insensitive everywhere', async () => {
    const lower = await s.fetch(
      TOKEN,
      formPost(
        { grant_type: 'client_credentials' },
        {
          Authorization: `basic ${btoa(`${DEMO_AGENT}:${secret}`)}`,
        },
      ),
    )
    expect(lower.status).toBe(200)
    const access = (await lower.json()).access_token as string
    expect(
      (await s.fetch(CONTEXT, { headers: { Authorization: `bearer ${access}` } })).status,
    ).toBe(200)
    expect(
      (await s.fetch(CONTEXT, { headers: { Authorization: `BEARER ${access}` } })).status,
    ).toBe(200)
    const revoke = await s.fetch(
      REVOKE,
      jsonPost({ token: 'x' }, { Authorization: `bEaReR ${access}` }),
    )
    expect(revoke.status).toBe(200)
  })
})

describe(`revocations hold without Redis (${s.runtime})`, () => {
  test('another agent’s 60 junk revocations do not evict one agent’s revocation', async () => {
    // A cache this small held every revocation of every agent, and evicted (the seed's bug).
    const iso = withoutRedis({ TOKEN_CACHE_MAX_ENTRIES: '50' })
    const victim = await getToken(iso)
    expect(
      (await iso.fetch(REVOKE, jsonPost({ token: victim.access_token }, client(iso)))).status,
    ).toBe(200)
    const flooder = bearer((await getToken(iso, DEMO_AGENT_2)).access_token)
    const junk = await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        iso.fetch(REVOKE, jsonPost({ token: `junk-${i}-${randomSecret(4)}` }, flooder)),
      ),
    )
    expect(new Set(junk.map((r) => r.status))).toEqual(new Set([200]))
    expect((await iso.fetch(CONTEXT, { headers: bearer(victim.access_token) })).status).toBe(401)
  })

  test('TOKEN_CACHE_MAX_ENTRIES=0 does not turn revocation off', async () => {
    for (const iso of [
      withoutRedis({ TOKEN_CACHE_MAX_ENTRIES: '0' }),
      isolate({ TOKEN_CACHE_MAX_ENTRIES: '0' }),
    ]) {
      const issued = await getToken(iso)
      const auth = bearer(issued.access_token)
      expect((await iso.fetch(CONTEXT, { headers: auth })).status).toBe(200)
      expect((await iso.fetch(REVOKE, jsonPost({ token: issued.access_token }, auth))).status).toBe(
        200,
      )
      expect((await iso.fetch(CONTEXT, { headers: auth })).status).toBe(401)
    }
  })

  test('an agent whose share is full has every token it holds revoked, never fewer', async () => {
    const iso = withoutRedis({ REVOCATION_MAX_PER_AGENT: '5', ...PATIENT })
    const held = await getToken(iso)
    const auth = bearer((await getToken(iso)).access_token)
    expect((await iso.fetch(CONTEXT, { headers: bearer(held.access_token) })).status).toBe(200)
    // Postgres down too: the revocations are this isolate's alone (Postgres would hold them,
    // and nothing would need revoking wholesale: src/auth/revocation.ts).
    await s.neon.setFaults({ refuse: true })
    try {
      for (let i = 0; i < 6; i++) {
        const res = await iso.fetch(REVOKE, formPost({ token: `jti-${i}` }, auth))
        expect(res.status).toBe(200)
      }
      expect((await iso.fetch(CONTEXT, { headers: bearer(held.access_token) })).status).toBe(401)
    } finally {
      await s.neon.clearFaults()
    }
    // Tokens issued in a later second are not affected (the SDK re-authenticates on a 401).
    await new Promise((r) => setTimeout(r, 1100))
    const fresh = await getToken(iso)
    expect((await iso.fetch(CONTEXT, { headers: bearer(fresh.access_token) })).status).toBe(200)
  })

  test('a store holding as many agents as it may: Postgres keeps a revocation; if it cannot either, 503 (it forgets none)', async () => {
    const iso = withoutRedis({ REVOCATION_MAX_AGENTS: '1', ...PATIENT })
    const first = await getToken(iso)
    expect(
      (await iso.fetch(REVOKE, jsonPost({ token: first.access_token }, client(iso)))).status,
    ).toBe(200)
    const second = await getToken(iso, DEMO_AGENT_2)
    const third = await getToken(iso, DEMO_AGENT_2)
    const kept = await iso.fetch(
      REVOKE,
      jsonPost({ token: second.access_token }, client(iso, DEMO_AGENT_2)),
    )
    expect(kept.status).toBe(200)
    // Held by Postgres: refused by this isolate and by any other.
    for (const where of [iso, withoutRedis()]) {
      expect((await where.fetch(CONTEXT, { headers: bearer(second.access_token) })).status).toBe(
        401,
      )
    }
    const auth = bearer(third.access_token)
    // demo-agent-2 holds no grant for demo-user-1: the 404 says its token works.
    expect((await iso.fetch(CONTEXT, { headers: auth })).status).toBe(404)
    await s.neon.setFaults({ refuse: true })
    try {
      const refused = await iso.fetch(REVOKE, formPost({ token: 'one-more-jti' }, auth))
      expect(refused.status).toBe(503)
      expect(refused.headers.get('retry-after')).toMatch(/^\d+$/)
      expect((await refused.json()).code).toBe('revocation_unavailable')
      expect((await iso.fetch(CONTEXT, { headers: bearer(first.access_token) })).status).toBe(401)
    } finally {
      await s.neon.clearFaults()
    }
  })
})

describe.runIf(s.hasRedis)(`revoke answers what happened (${s.runtime})`, () => {
  test('Redis down: 503 revocation_partial, and the token is refused where it was revoked', async () => {
    const iso = isolate({ REDIS_TIMEOUT_MS: '300' })
    const issued = await getToken(iso)
    const auth = bearer(issued.access_token)
    expect((await iso.fetch(CONTEXT, { headers: auth })).status).toBe(200)
    await s.redis.setFaults({ refuse: true })
    try {
      const res = await iso.fetch(REVOKE, jsonPost({ token: issued.access_token }, client(iso)))
      expect(res.status).toBe(503)
      expect(res.headers.get('retry-after')).toMatch(/^\d+$/)
      const body = await res.json()
      expect(body.code).toBe('revocation_partial')
      expect(body.error).toBe('temporarily_unavailable')
      expect((await iso.fetch(CONTEXT, { headers: auth })).status).toBe(401)
    } finally {
      await s.redis.clearFaults()
    }
    // Retried once Redis is back: 200, and another isolate refuses the token too.
    const retried = await iso.fetch(REVOKE, jsonPost({ token: issued.access_token }, client(iso)))
    expect(retried.status).toBe(200)
    const other = s.withEnv({ ...iso.env, ISOLATE: randomSecret(4) })
    expect((await other.fetch(CONTEXT, { headers: auth })).status).toBe(401)
  })
})
