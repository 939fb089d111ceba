// POST /api/v1/agent/token and /token/revoke, in both runtimes.
import { describe, expect, test } from 'vitest'
import { hashAgentSecret } from '../../src/auth/secret-hash.ts'
import { sql } from '../../src/db/client.ts'
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
import { randomSecret, scenario } from '../support/scenario.ts'

const s = await scenario()
const TOKEN = '/api/v1/agent/token'
const REVOKE = '/api/v1/agent/token/revoke'
const secret = agentSecret(s)
/** RFC 6749 §6: a refresh authenticates the client (demo-agent, by HTTP Basic). */
const client = { Authorization: basic(DEMO_AGENT, secret) }

type Problem = {
  code: string
  error?: string
  error_description?: string
  status: number
  errors?: { path: string }[]
}

/** The OAuth endpoints answer errors as application/json (RFC 6749 §5.2), problem members too. */
async function problem(res: Response): Promise<Problem> {
  expect(res.headers.get('content-type')).toBe('application/json')
  const body = (await res.json()) as Problem & Record<string, unknown>
  expect(body).toMatchObject({ status: res.status, type: `/problems/${body.code}` })
  expect(body.request_id).toBe(res.headers.get('x-request-id'))
  return body
}

describe(`token endpoint (${s.runtime})`, () => {
  test('the JSON form issues an access and a refresh token as the contract shapes them', async () => {
    const res = await s.fetch(TOKEN, jsonPost({ agent_id: DEMO_AGENT, agent_secret: secret }))
    expect(res.status).toBe(200)
    expect(res.headers.get('cache-control')).toBe('no-store')
    const body = await res.json()
    expect(body).toMatchObject({
      token_type: 'Bearer',
      expires_in: 8 * 3600,
      refresh_expires_in: 30 * 86400,
      scope: 'context:read progress:write',
      environment: 'development',
    })
    expect(body.refresh_token).toMatch(/^rt_[\w-]{43}$/)
    const { header, payload } = decodeJwt(body.access_token)
    // ES256 with the scenario's key: kid is its RFC 7638 thumbprint (43 base64url characters).
    expect(header).toMatchObject({ alg: 'ES256', typ: 'at+jwt' })
    expect(header.kid).toMatch(/^[\w-]{43}$/)
    expect(payload).toMatchObject({
      iss: 'https://agent-api.test',
      aud: 'https://agent-api.test',
      sub: DEMO_AGENT,
      client_id: DEMO_AGENT,
      scope: 'context:read progress:write',
      env: 'development',
    })
    expect(payload.exp).toBe((payload.iat as number) + 8 * 3600)
    expect(payload.nbf).toBe(payload.iat)
    expect(payload.jti).toMatch(/^[0-9a-f-]{36}$/)
    expect(Date.parse(body.expires_at)).toBe((payload.exp as number) * 1000)
  })

  test('RFC 6749 client credentials: form body and HTTP Basic', async () => {
    const inBody = await s.fetch(
      TOKEN,
      formPost({ grant_type: 'client_credentials', client_id: DEMO_AGENT, client_secret: secret }),
    )
    expect(inBody.status).toBe(200)
    const viaBasic = await s.fetch(
      TOKEN,
      formPost(
        { grant_type: 'client_credentials', scope: 'context:read' },
        { Authorization: basic(DEMO_AGENT, secret) },
      ),
    )
    expect(viaBasic.status).toBe(200)
    expect((await viaBasic.json()).scope).toBe('context:read')
    // RFC 6749 §3.2.1: a client may name itself with client_id beside Basic.
    const namedToo = await s.fetch(
      TOKEN,
      formPost(
        { grant_type: 'client_credentials', client_id: DEMO_AGENT },
        { Authorization: basic(DEMO_AGENT, secret) },
      ),
    )
    expect(namedToo.status).toBe(200)
  })

  test('requested scopes must be a subset of the agent’s', async () => {
    const res = await s.fetch(
      TOKEN,
      jsonPost({ agent_id: DEMO_AGENT, agent_secret: secret, scope: 'context:read admin' }),
    )
    expect(res.status).toBe(400)
    expect(await problem(res)).toMatchObject({ code: 'invalid_scope', error: 'invalid_scope' })
  })

  test('unknown agent, wrong secret and inactive agent give one indistinguishable 401', async () => {
    const db = s.db()
    await db.query(
      sql`INSERT INTO agents (id, active, allowed_scopes) VALUES ('retired-agent', false, '{context:read}')`,
    )
    const answers = await Promise.all(
      [
        { agent_id: 'no-such-agent', agent_secret: secret },
        { agent_id: DEMO_AGENT, agent_secret: `${secret}x` },
        { agent_id: 'retired-agent', agent_secret: secret },
      ].map(async (body) => {
        const res = await s.fetch(
          TOKEN,
          jsonPost(body, s.from(`198.51.100.${Math.floor(Math.random() * 200)}`)),
        )
        const p = await problem(res)
        return {
          ...p,
          http: res.status,
          auth: res.headers.get('www-authenticate'),
          request_id: undefined,
        }
      }),
    )
    for (const answer of answers) {
      expect(answer).toEqual({
        ...answers[0],
        http: 401,
        status: 401,
        auth: 'Basic realm="agent-api"',
        code: 'invalid_client',
        error: 'invalid_client',
      })
    }
  })

  test('an agent’s own secret replaces the shared one', async () => {
    const own = randomSecret()
    await s
      .db()
      .query(
        sql`INSERT INTO agents (id, allowed_scopes, secret_hash) VALUES ('own-secret-agent', '{context:read}', ${await hashAgentSecret(own)})`,
      )
    const shared = await s.fetch(
      TOKEN,
      jsonPost({ agent_id: 'own-secret-agent', agent_secret: secret }),
    )
    expect(shared.status).toBe(401)
    const ownRes = await s.fetch(
      TOKEN,
      jsonPost({ agent_id: 'own-secret-agent', agent_secret: own }),
    )
    expect(ownRes.status).toBe(200)
    expect((await ownRes.json()).scope).toBe('context:read')
  })

  test.each([
    [
      'unknown field',
      jsonPost({ agent_id: DEMO_AGENT, agent_secret: secret, extra: 1 }),
      400,
      'invalid_request',
    ],
    ['missing secret', jsonPost({ agent_id: DEMO_AGENT }), 400, 'invalid_request'],
    [
      'malformed JSON',
      { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"agent_id":' },
      400,
      'invalid_json',
    ],
    ['a JSON array', jsonPost([1]), 400, 'invalid_request'],
    [
      'wrong content type',
      { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'x' },
      415,
      'unsupported_media_type',
    ],
    [
      'no grant_type in a form',
      formPost({ client_id: DEMO_AGENT, client_secret: secret }),
      400,
      'invalid_request',
    ],
    [
      'a form client_id longer than an identifier (as in JSON)',
      formPost({
        grant_type: 'client_credentials',
        client_id: 'a'.repeat(129),
        client_secret: secret,
      }),
      400,
      'invalid_request',
    ],
    [
      'an unknown grant',
      formPost({ grant_type: 'password', username: 'a', password: 'b' }),
      400,
      'unsupported_grant_type',
    ],
    [
      'an unknown grant in JSON',
      jsonPost({ grant_type: 'implicit' }),
      400,
      'unsupported_grant_type',
    ],
    [
      'a repeated parameter',
      {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: 'grant_type=client_credentials&grant_type=client_credentials',
      },
      400,
      'invalid_request',
    ],
    [
      'credentials twice',
      formPost(
        { grant_type: 'client_credentials', client_id: DEMO_AGENT, client_secret: secret },
        { Authorization: basic(DEMO_AGENT, secret) },
      ),
      400,
      'invalid_request',
    ],
    [
      'malformed Basic',
      formPost({ grant_type: 'client_credentials' }, { Authorization: 'Basic %%%' }),
      401,
      'invalid_client',
    ],
    ['refresh without a token', formPost({ grant_type: 'refresh_token' }), 400, 'invalid_request'],
    [
      'an unknown refresh token',
      formPost(
        { grant_type: 'refresh_token', refresh_token: `rt_${'x'.repeat(43)}` },
        { Authorization: basic(DEMO_AGENT, secret) },
      ),
      400,
      'invalid_grant',
    ],
  ] as const)(
    '%s → %i %s, application/json with OAuth and problem members',
    async (_name, init, status, code) => {
      const res = await s.fetch(TOKEN, {
        ...init,
        headers: { ...init.headers, ...s.from(`203.0.113.${status}`) },
      })
      expect(res.status).toBe(status)
      const body = await problem(res)
      expect(body.code).toBe(code)
      // Every error here speaks OAuth too; ours-only codes map to invalid_request.
      const oauth =
        code === 'invalid_json' || code === 'unsupported_media_type' ? 'invalid_request' : code
      expect(body.error).toBe(oauth)
      expect(typeof body.error_description).toBe('string')
    },
  )
})

describe(`refresh tokens (${s.runtime})`, () => {
  test('rotate on every use; re-use of a spent one revokes the whole family', async () => {
    const first = await getToken(s)
    const refresh = (token: string) =>
      s.fetch(TOKEN, formPost({ grant_type: 'refresh_token', refresh_token: token }, client))
    const second = await refresh(first.refresh_token)
    expect(second.status).toBe(200)
    const secondBody = await second.json()
    expect(secondBody.refresh_token).not.toBe(first.refresh_token)
    expect(secondBody.scope).toBe(first.scope)

    // JSON form of the refresh grant works too.
    const third = await s.fetch(
      TOKEN,
      jsonPost({ grant_type: 'refresh_token', refresh_token: secondBody.refresh_token }, client),
    )
    expect(third.status).toBe(200)
    const thirdBody = await third.json()

    // Replaying the first (spent) token: refused, and the family dies with it.
    const replay = await refresh(first.refresh_token)
    expect(replay.status).toBe(400)
    expect((await problem(replay)).error).toBe('invalid_grant')
    const afterReplay = await refresh(thirdBody.refresh_token)
    expect(afterReplay.status).toBe(400)
    const rows = await s
      .db()
      .query<{ n: number }>(
        sql`SELECT count(*)::int AS n FROM refresh_tokens WHERE agent_id = ${DEMO_AGENT} AND revoked_why = 'reuse_detected'`,
      )
    expect(rows[0]?.n).toBeGreaterThanOrEqual(3)
  })

  test('a refresh may narrow the scope, never widen it', async () => {
    const narrow = await getToken(s, DEMO_AGENT, { scope: 'context:read' })
    const wider = await s.fetch(
      TOKEN,
      formPost(
        {
          grant_type: 'refresh_token',
          refresh_token: narrow.refresh_token,
          scope: 'context:read progress:write',
        },
        client,
      ),
    )
    expect(wider.status).toBe(400)
    expect((await problem(wider)).error).toBe('invalid_scope')
    // The refusal did not spend the token: it still refreshes (and was not taken as reuse).
    const again = await s.fetch(
      TOKEN,
      formPost({ grant_type: 'refresh_token', refresh_token: narrow.refresh_token }, client),
    )
    expect(again.status).toBe(200)
    expect((await again.json()).scope).toBe('context:read')
  })

  test('another client’s refresh token is refused and left unspent for its owner', async () => {
    const owners = await getToken(s)
    const stolen = await s.fetch(
      TOKEN,
      formPost(
        { grant_type: 'refresh_token', refresh_token: owners.refresh_token },
        { Authorization: basic(DEMO_AGENT_2, secret) },
      ),
    )
    expect(stolen.status).toBe(400)
    expect((await problem(stolen)).error).toBe('invalid_grant')
    const own = await s.fetch(
      TOKEN,
      formPost(
        { grant_type: 'refresh_token', refresh_token: owners.refresh_token },
        { Authorization: basic(DEMO_AGENT, secret) },
      ),
    )
    expect(own.status).toBe(200)
  })

  test('an expired refresh token is refused', async () => {
    const token = await getToken(s)
    await s.db().query(sql`UPDATE refresh_tokens SET expires_at = now() - interval '1 second'`)
    const res = await s.fetch(
      TOKEN,
      formPost({ grant_type: 'refresh_token', refresh_token: token.refresh_token }, client),
    )
    expect(res.status).toBe(400)
  })
})

describe(`revocation, RFC 7009 (${s.runtime})`, () => {
  test('revoking a refresh token ends it (and its family)', async () => {
    const token = await getToken(s)
    const res = await s.fetch(
      REVOKE,
      formPost({ token: token.refresh_token }, { Authorization: basic(DEMO_AGENT, secret) }),
    )
    expect(res.status).toBe(200)
    const refresh = await s.fetch(
      TOKEN,
      formPost({ grant_type: 'refresh_token', refresh_token: token.refresh_token }, client),
    )
    expect(refresh.status).toBe(400)
  })

  test('revoking an access token (itself or its jti) makes it fail everywhere it is presented', async () => {
    for (const form of ['token', 'jti'] as const) {
      const token = await getToken(s)
      // The access token authenticates the revocation request itself: proof it works first.
      const ok = await s.fetch(
        REVOKE,
        jsonPost({ token: 'nothing-to-revoke' }, bearer(token.access_token)),
      )
      expect(ok.status).toBe(200)
      const value =
        form === 'token' ? token.access_token : String(decodeJwt(token.access_token).payload.jti)
      const res = await s.fetch(
        REVOKE,
        jsonPost({ token: value, agent_id: DEMO_AGENT, agent_secret: secret }),
      )
      expect(res.status).toBe(200)
      const after = await s.fetch(REVOKE, jsonPost({ token: 'x' }, bearer(token.access_token)))
      expect(after.status).toBe(401)
      expect(after.headers.get('www-authenticate')).toContain('error="invalid_token"')
    }
  })

  test('always 200 for a well-formed request, whatever the token; 401 without authentication', async () => {
    const res = await s.fetch(
      REVOKE,
      formPost({ token: 'unknown' }, { Authorization: basic(DEMO_AGENT, secret) }),
    )
    expect(res.status).toBe(200)
    const anonymous = await s.fetch(REVOKE, formPost({ token: 'unknown' }))
    expect(anonymous.status).toBe(401)
    const missing = await s.fetch(
      REVOKE,
      formPost({}, { Authorization: basic(DEMO_AGENT, secret) }),
    )
    expect(missing.status).toBe(400)
    // A refused access token as the credential: OAuth's error says what its challenge says.
    const badBearer = await s.fetch(
      REVOKE,
      formPost({ token: 'unknown' }, { Authorization: 'Bearer not.a.token' }),
    )
    expect(badBearer.status).toBe(401)
    expect(badBearer.headers.get('www-authenticate')).toContain('error="invalid_token"')
    expect(await badBearer.json()).toMatchObject({
      code: 'invalid_token',
      error: 'invalid_token',
    })
  })

  test('an agent cannot revoke another agent’s tokens', async () => {
    const victim = await getToken(s)
    const other = await getToken(s, 'demo-agent-2')
    const res = await s.fetch(
      REVOKE,
      jsonPost({ token: victim.access_token }, bearer(other.access_token)),
    )
    expect(res.status).toBe(200)
    const refresh = await s.fetch(
      REVOKE,
      jsonPost({ token: victim.refresh_token }, bearer(other.access_token)),
    )
    expect(refresh.status).toBe(200)
    const still = await s.fetch(REVOKE, jsonPost({ token: 'x' }, bearer(victim.access_token)))
    expect(still.status).toBe(200)
    const stillRefresh = await s.fetch(
      TOKEN,
      formPost({ grant_type: 'refresh_token', refresh_token: victim.refresh_token }, client),
    )
    expect(stillRefresh.status).toBe(200)
  })
})

describe(`brute force (${s.runtime})`, () => {
  test('failures for one agent from one address hit 429 with Retry-After; others are unaffected', async () => {
    const attacker = s.from('192.0.2.10')
    for (let i = 0; i < 10; i++) {
      const res = await s.fetch(
        TOKEN,
        jsonPost({ agent_id: DEMO_AGENT, agent_secret: `guess-${i}` }, attacker),
      )
      expect(res.status).toBe(401)
      expect(Number(res.headers.get('ratelimit-remaining'))).toBe(9 - i)
      expect(res.headers.get('ratelimit-limit')).toBe('10')
    }
    const locked = await s.fetch(
      TOKEN,
      jsonPost({ agent_id: DEMO_AGENT, agent_secret: secret }, attacker),
    )
    expect(locked.status).toBe(429)
    expect(Number(locked.headers.get('retry-after'))).toBeGreaterThan(0)
    expect(await problem(locked)).toMatchObject({
      code: 'rate_limited',
      error: 'temporarily_unavailable',
    })
    // The same agent from elsewhere, and another agent from here, still get tokens.
    expect(
      (
        await s.fetch(
          TOKEN,
          jsonPost({ agent_id: DEMO_AGENT, agent_secret: secret }, s.from('192.0.2.11')),
        )
      ).status,
    ).toBe(200)
    expect(
      (await s.fetch(TOKEN, jsonPost({ agent_id: 'demo-agent-2', agent_secret: secret }, attacker)))
        .status,
    ).toBe(200)
  })

  test('an address failing across many agent ids hits its own limit', async () => {
    const tight = s.withEnv({
      RATE_LIMIT_TOKEN_FAILURES_PER_ADDRESS: '5',
      REDIS_KEY_PREFIX: `t:${randomSecret(6)}:`,
    })
    const from = s.from('192.0.2.20')
    for (let i = 0; i < 5; i++) {
      const res = await tight.fetch(
        TOKEN,
        jsonPost({ agent_id: `agent-${i}`, agent_secret: 'x' }, from),
      )
      expect(res.status).toBe(401)
    }
    const res = await tight.fetch(
      TOKEN,
      jsonPost({ agent_id: 'agent-99', agent_secret: 'x' }, from),
    )
    expect(res.status).toBe(429)
  })

  test.runIf(s.hasRedis)(
    'with Redis failing, the per-isolate limiter keeps protection on',
    async () => {
      const isolated = s.withEnv({ REDIS_KEY_PREFIX: `t:${randomSecret(6)}:` })
      await s.redis.setFaults({ refuse: true })
      try {
        const from = s.from('192.0.2.30')
        for (let i = 0; i < 10; i++) {
          const res = await isolated.fetch(
            TOKEN,
            jsonPost({ agent_id: DEMO_AGENT, agent_secret: 'x' }, from),
          )
          expect(res.status).toBe(401)
        }
        const res = await isolated.fetch(
          TOKEN,
          jsonPost({ agent_id: DEMO_AGENT, agent_secret: secret }, from),
        )
        expect(res.status).toBe(429)
      } finally {
        await s.redis.clearFaults()
      }
    },
  )
})

describe(`fail-closed and outages (${s.runtime})`, () => {
  test('a production config with a weak secret answers 503 on the token endpoint', async () => {
    const prod = s.withEnv({
      APP_ENV: 'production',
      PROD_AGENT_SECRET: 'short',
      PROD_JWT_SECRET: randomSecret(),
    })
    const res = await prod.fetch(TOKEN, jsonPost({ agent_id: DEMO_AGENT, agent_secret: 'short' }))
    expect(res.status).toBe(503)
    expect(res.headers.get('retry-after')).toMatch(/^\d+$/)
    expect((await problem(res)).code).toBe('configuration_error')
  })

  test('a broken query is a 500 (and logged, OAuth server_error), not an outage', async () => {
    await s.db().query(sql`ALTER TABLE refresh_tokens RENAME TO refresh_tokens_away`)
    try {
      const res = await s.fetch(
        TOKEN,
        jsonPost({ agent_id: DEMO_AGENT, agent_secret: secret }, s.from('192.0.2.41')),
      )
      expect(res.status).toBe(500)
      expect((await problem(res)).code).toBe('internal_error')
    } finally {
      await s.db().query(sql`ALTER TABLE refresh_tokens_away RENAME TO refresh_tokens`)
    }
    expect(s.logs().some((line) => line.includes('unhandled error'))).toBe(true)
  })

  test('the database down is a 503 with Retry-After, not a 401', async () => {
    await s.neon.setFaults({ refuse: true })
    try {
      const res = await s.fetch(
        TOKEN,
        jsonPost({ agent_id: DEMO_AGENT, agent_secret: secret }, s.from('192.0.2.40')),
      )
      expect(res.status).toBe(503)
      expect(res.headers.get('retry-after')).toMatch(/^\d+$/)
      expect(await problem(res)).toMatchObject({
        code: 'database_unavailable',
        error: 'temporarily_unavailable',
      })
    } finally {
      await s.neon.clearFaults()
    }
  })
})
