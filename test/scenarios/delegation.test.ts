// Delegation and key-bound agents (issue 6/8), in both runtimes: RFC 8693 token exchange (a
// token that serves one user only), RFC 7523 private_key_jwt (assertions checked and used
// once), with oauth4webapi and the MCP SDK as the clients, and the refusals as tables.
import { auth } from '@modelcontextprotocol/sdk/client/auth.js'
import { PrivateKeyJwtProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js'
import { exportJWK, generateKeyPair, type JWTPayload, SignJWT } from 'jose'
import * as oauth from 'oauth4webapi'
import { describe, expect, test } from 'vitest'
import { createAgent, grantUser, setPublicKey, ungrantUser } from '../../src/auth/agents.ts'
import {
  agentSecret,
  basic,
  bearer,
  DEMO_AGENT,
  decodeJwt,
  formPost,
  getToken,
  jsonPost,
} from '../support/agents.ts'
import { discover as discoverWith, into, peerOptions } from '../support/peers.ts'
import {
  BASE_URL,
  randomSecret,
  roomyIsolate,
  type Scenario,
  scenario,
} from '../support/scenario.ts'

const s = await scenario()
const TOKEN = '/api/v1/agent/token'
const REVOKE = '/api/v1/agent/token/revoke'
const INTROSPECT = '/api/v1/agent/token/introspect'
const EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange'
const AT = 'urn:ietf:params:oauth:token-type:access_token'
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'
const context = (user: string) => `/api/v1/agent/users/${user}/context`

const options = (sc: Scenario = s) => peerOptions(sc)
const discover = (sc: Scenario = s) => discoverWith(sc)

/** Failure limits a table or a burst of refusals does not reach (they are tested elsewhere). */
const isolate = (extra: Record<string, string | undefined> = {}) => roomyIsolate(s, extra)
const withoutRedis = () =>
  isolate({ UPSTASH_REDIS_REST_URL: undefined, UPSTASH_REDIS_REST_TOKEN: undefined })

const exchange = (sc: Scenario, fields: Record<string, string>) =>
  sc.fetch(TOKEN, formPost({ grant_type: EXCHANGE, subject_token_type: AT, ...fields }))

/** An exchange as oauth4webapi makes it (the agent as a public client): the tokens it reads. */
async function peerExchange(sc: Scenario, fields: Record<string, string>) {
  const as = await discover(sc)
  const client = { client_id: DEMO_AGENT }
  const res = await oauth.genericTokenEndpointRequest(
    as,
    client,
    oauth.None(),
    EXCHANGE,
    new URLSearchParams({ subject_token_type: AT, ...fields }),
    options(sc),
  )
  return oauth.processGenericTokenEndpointResponse(as, client, res)
}

describe(`token exchange, RFC 8693 (${s.runtime})`, () => {
  test('oauth4webapi genericGrantRequest: sub = user, act.sub = agent, narrowed, no longer-lived', async () => {
    expect((await discover()).grant_types_supported).toContain(EXCHANGE)
    const agent = await getToken(s)
    const tokens = await peerExchange(s, {
      subject_token: agent.access_token,
      requested_subject: 'demo-user-1',
      scope: 'context:read',
    })
    expect(tokens.issued_token_type).toBe(AT)
    expect(tokens.refresh_token).toBeUndefined()
    const { payload } = decodeJwt(tokens.access_token)
    const parent = decodeJwt(agent.access_token).payload
    expect(payload).toMatchObject({
      sub: 'demo-user-1',
      act: { sub: DEMO_AGENT },
      client_id: DEMO_AGENT,
      scope: 'context:read',
      aud: BASE_URL,
    })
    expect(payload.exp as number).toBeLessThanOrEqual(parent.exp as number)
    expect(
      (await s.fetch(context('demo-user-1'), { headers: bearer(tokens.access_token) })).status,
    ).toBe(200)
  })

  test('audience (RFC 8693 §2.1) names the target: ours by their resource URIs; anything else, two, or one disagreeing with resource is invalid_target', async () => {
    const sc = isolate()
    const agent = await getToken(sc)
    const base = { subject_token: agent.access_token, requested_subject: 'demo-user-1' }
    const mcp = `${BASE_URL}/mcp`
    const tokens = await peerExchange(sc, { ...base, audience: mcp })
    expect(decodeJwt(tokens.access_token).payload.aud).toBe(mcp)
    // The same in JSON, and with a resource naming the same target.
    const json = await sc.fetch(
      TOKEN,
      jsonPost({ grant_type: EXCHANGE, subject_token_type: AT, ...base, audience: BASE_URL }),
    )
    expect(json.status).toBe(200)
    const viaJson = (await json.json()) as { access_token: string }
    expect(decodeJwt(viaJson.access_token).payload.aud).toBe(BASE_URL)
    const both = await exchange(sc, { ...base, audience: mcp, resource: mcp })
    expect(both.status).toBe(200)

    const refused = async (init: RequestInit) => {
      const r = await sc.fetch(TOKEN, init)
      return { status: r.status, error: ((await r.json()) as { error?: string }).error }
    }
    const form = (pairs: [string, string][]) => ({
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams([
        ['grant_type', EXCHANGE],
        ['subject_token_type', AT],
        ...Object.entries(base),
        ...pairs,
      ]).toString(),
    })
    const invalidTarget = { status: 400, error: 'invalid_target' }
    for (const [name, init] of [
      ['another service', form([['audience', 'https://elsewhere.example/']])],
      ['a logical name we do not serve', form([['audience', 'payments']])],
      ['our issuer with a trailing slash', form([['audience', `${BASE_URL}/`]])],
      [
        'two audiences',
        form([
          ['audience', BASE_URL],
          ['audience', mcp],
        ]),
      ],
      [
        'audience and resource naming two targets',
        form([
          ['audience', BASE_URL],
          ['resource', mcp],
        ]),
      ],
      [
        'JSON, another service',
        jsonPost({ grant_type: EXCHANGE, subject_token_type: AT, ...base, audience: 'x' }),
      ],
    ] as const) {
      expect({ name, ...(await refused(init)) }).toEqual({ name, ...invalidTarget })
    }
    // An audience that is not storable text is a malformed request, not a target.
    expect(await refused(form([['audience', 'a\u0000b']]))).toEqual({
      status: 400,
      error: 'invalid_request',
    })
  })

  test('with Redis and Postgres both refusing, an exchange is a documented 503 a client retries (temporarily_unavailable)', async () => {
    const sc = isolate()
    const agent = await getToken(sc)
    // A fresh isolate, so the subject token's revocation status is not cached.
    const other = isolate()
    await s.redis.setFaults({ refuse: true })
    await s.neon.setFaults({ refuse: true })
    try {
      const res = await exchange(other, {
        subject_token: agent.access_token,
        requested_subject: 'demo-user-1',
      })
      expect(res.status).toBe(503)
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0)
      expect(await res.json()).toMatchObject({ error: 'temporarily_unavailable' })
    } finally {
      await s.redis.clearFaults()
      await s.neon.clearFaults()
    }
  })

  test('a delegated token serves its user only: another user the agent holds is the unknown user’s 404', async () => {
    const agent = await getToken(s)
    const res = await exchange(s, {
      subject_token: agent.access_token,
      requested_subject: 'demo-user-1',
    })
    expect(res.status).toBe(200)
    const delegated = ((await res.json()) as { access_token: string }).access_token
    const headers = bearer(delegated)
    // demo-agent holds demo-user-2: its own token reads it, the delegated one must not.
    expect(
      (await s.fetch(context('demo-user-2'), { headers: bearer(agent.access_token) })).status,
    ).toBe(200)
    const other = await s.fetch(context('demo-user-2'), { headers })
    const unknown = await s.fetch(context('no-such-user'), { headers })
    expect(other.status).toBe(404)
    expect(unknown.status).toBe(404)
    const strip = (b: Record<string, unknown>) => ({ ...b, request_id: undefined })
    expect(strip(await other.json())).toEqual(strip(await unknown.json()))
    // Progress alike: the whole request refused as for an unknown user.
    const update = (user_id: string) => ({
      user_id,
      task_id: 'delegation',
      status: 'in_progress',
      progress: 10,
      occurred_at: new Date().toISOString(),
    })
    const foreign = await s.fetch(
      '/api/v1/agent/progress',
      jsonPost(update('demo-user-2'), headers),
    )
    expect(foreign.status).toBe(404)
    expect(((await foreign.json()) as { code: string }).code).toBe('user_not_found')
    const own = await s.fetch('/api/v1/agent/progress', jsonPost(update('demo-user-1'), headers))
    expect(own.status).toBe(202)
    // The users it may act for: that one user, though its agent holds more.
    const users = await s.fetch('/api/v1/agent/users', { headers })
    expect(users.status).toBe(200)
    expect((await users.json()) as unknown).toMatchObject({
      users: [{ id: 'demo-user-1' }],
      next_cursor: null,
    })
    const all = await s.fetch('/api/v1/agent/users', { headers: bearer(agent.access_token) })
    const ids = ((await all.json()) as { users: { id: string }[] }).users.map((u) => u.id)
    expect(ids).toEqual(expect.arrayContaining(['demo-user-1', 'demo-user-2']))
  })

  test('a delegated token cannot authenticate a revocation of its agent’s tokens', async () => {
    const sc = isolate()
    const agent = await getToken(sc)
    const res = await exchange(sc, {
      subject_token: agent.access_token,
      requested_subject: 'demo-user-1',
    })
    const delegated = ((await res.json()) as { access_token: string }).access_token
    for (const token of [agent.access_token, agent.refresh_token, delegated]) {
      const revoke = await sc.fetch(REVOKE, formPost({ token }, bearer(delegated)))
      expect(revoke.status).toBe(401)
      expect(((await revoke.json()) as { error: string }).error).toBe('invalid_client')
    }
    expect(
      (await sc.fetch(context('demo-user-2'), { headers: bearer(agent.access_token) })).status,
    ).toBe(200)
  })

  test('a client that authenticated is not charged for an exchange of another agent’s token', async () => {
    // Default failure limits (10 per agent and address): the refusals are grant errors of an
    // authenticated client, never guesses, so they leave its budget whole.
    const sc = s.withEnv({ REDIS_KEY_PREFIX: `t:${randomSecret(6)}:`, ISOLATE: randomSecret(4) })
    const agent = await getToken(sc)
    const auth = { Authorization: basic('demo-agent-2', agentSecret(sc)) }
    for (let i = 0; i < 12; i++) {
      const res = await sc.fetch(
        TOKEN,
        formPost(
          {
            grant_type: EXCHANGE,
            subject_token_type: AT,
            subject_token: agent.access_token,
            requested_subject: 'demo-user-1',
          },
          auth,
        ),
      )
      expect(res.status).toBe(400)
      expect(((await res.json()) as { error: string }).error).toBe('invalid_grant')
    }
    expect((await getToken(sc, 'demo-agent-2')).access_token).toBeTruthy()
  })

  test('refusals: no grant = unknown user, widened scope, re-exchange for another user, bad tokens', async () => {
    const sc = isolate()
    const agent = await getToken(sc, DEMO_AGENT, { scope: 'context:read' })
    const answer = async (fields: Record<string, string>) => {
      const res = await exchange(sc, fields)
      const body = (await res.json()) as Record<string, unknown>
      return { status: res.status, error: body.error, description: body.error_description }
    }
    const noGrant = await answer({
      subject_token: agent.access_token,
      requested_subject: 'demo-user-3',
    })
    const unknown = await answer({
      subject_token: agent.access_token,
      requested_subject: 'nobody-at-all',
    })
    expect(noGrant).toEqual(unknown)
    expect(noGrant).toMatchObject({ status: 400, error: 'invalid_grant' })
    expect(
      await answer({
        subject_token: agent.access_token,
        requested_subject: 'demo-user-1',
        scope: 'context:read progress:write',
      }),
    ).toMatchObject({ status: 400, error: 'invalid_scope' })

    const first = await exchange(sc, {
      subject_token: agent.access_token,
      requested_subject: 'demo-user-1',
    })
    const delegated = ((await first.json()) as { access_token: string }).access_token
    expect(
      await answer({ subject_token: delegated, requested_subject: 'demo-user-2' }),
    ).toMatchObject({ status: 400, error: 'invalid_grant' })
    // Its own user again: allowed (no wider, no longer).
    expect(
      (await answer({ subject_token: delegated, requested_subject: 'demo-user-1' })).status,
    ).toBe(200)

    const other = await getToken(sc, 'demo-agent-2')
    const table: [string, Record<string, string>, number, string][] = [
      [
        'garbage subject token',
        { subject_token: 'x.y.z', requested_subject: 'demo-user-1' },
        400,
        'invalid_grant',
      ],
      ['missing requested_subject', { subject_token: agent.access_token }, 400, 'invalid_request'],
      [
        'actor_token_type without actor_token (RFC 8693 §2.1: MUST NOT)',
        {
          subject_token: agent.access_token,
          actor_token_type: AT,
          requested_subject: 'demo-user-1',
        },
        400,
        'invalid_request',
      ],
      [
        'actor_token without actor_token_type (RFC 8693 §2.1: REQUIRED)',
        {
          subject_token: agent.access_token,
          actor_token: agent.access_token,
          requested_subject: 'demo-user-1',
        },
        400,
        'invalid_request',
      ],
      [
        'wrong subject_token_type',
        {
          subject_token: agent.access_token,
          requested_subject: 'demo-user-1',
          subject_token_type: 'urn:x',
        },
        400,
        'invalid_request',
      ],
      [
        'actor token of another agent',
        {
          subject_token: agent.access_token,
          actor_token: other.access_token,
          actor_token_type: AT,
          requested_subject: 'demo-user-1',
        },
        400,
        'invalid_grant',
      ],
      [
        'NUL in requested_subject',
        { subject_token: agent.access_token, requested_subject: 'a\u0000b' },
        400,
        'invalid_request',
      ],
    ]
    for (const [name, fields, status, error] of table) {
      expect({ name, ...(await answer(fields)) }).toMatchObject({ name, status, error })
    }
  })

  test('revoking the agent’s token, or the grant, ends the delegated token', async () => {
    const sc = isolate({ GRANT_CACHE_TTL_MS: '0', REVOCATION_CHECK_TTL_MS: '0' })
    const agent = await getToken(sc)
    const take = async () => {
      const res = await exchange(sc, {
        subject_token: agent.access_token,
        requested_subject: 'demo-user-2',
      })
      expect(res.status).toBe(200)
      return bearer(((await res.json()) as { access_token: string }).access_token)
    }
    const delegated = await take()
    expect((await sc.fetch(context('demo-user-2'), { headers: delegated })).status).toBe(200)
    await ungrantUser(sc.db(), DEMO_AGENT, 'demo-user-2')
    try {
      expect((await sc.fetch(context('demo-user-2'), { headers: delegated })).status).toBe(404)
      expect(
        (
          await exchange(sc, {
            subject_token: agent.access_token,
            requested_subject: 'demo-user-2',
          })
        ).status,
      ).toBe(400)
    } finally {
      await grantUser(sc.db(), DEMO_AGENT, 'demo-user-2')
    }
    const again = await take()
    const revoked = await sc.fetch(
      REVOKE,
      formPost({ token: agent.access_token }, bearer(agent.access_token)),
    )
    expect(revoked.status).toBe(200)
    const after = await sc.fetch(context('demo-user-2'), { headers: again })
    expect(after.status).toBe(401)
    expect(after.headers.get('www-authenticate')).toContain('invalid_token')
  })
})

// --- private_key_jwt ---------------------------------------------------------------------------

const keyAgent = `key-agent-${randomSecret(4)}`
const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true })
const publicJwk = await exportJWK(publicKey)
await createAgent(s.db(), {
  id: keyAgent,
  scopes: ['context:read', 'progress:write'],
  ownSecret: false,
})
await setPublicKey(s.db(), keyAgent, { ...publicJwk, alg: 'ES256' })
await grantUser(s.db(), keyAgent, 'demo-user-1')

const assertion = (claims: JWTPayload = {}, key: CryptoKey = privateKey) => {
  const now = Math.floor(Date.now() / 1000)
  return new SignJWT({
    iss: keyAgent,
    sub: keyAgent,
    aud: BASE_URL,
    jti: crypto.randomUUID(),
    iat: now,
    exp: now + 60,
    ...claims,
  })
    .setProtectedHeader({ alg: 'ES256' })
    .sign(key)
}
const assertedToken = (sc: Scenario, jwt: string, extra: Record<string, string> = {}) =>
  sc.fetch(
    TOKEN,
    formPost({
      grant_type: 'client_credentials',
      client_assertion_type: JWT_BEARER,
      client_assertion: jwt,
      ...extra,
    }),
  )

describe(`private_key_jwt, RFC 7523 (${s.runtime})`, () => {
  test('oauth4webapi PrivateKeyJwt at the token, introspection and revocation endpoints', async () => {
    const as = await discover()
    expect(as.token_endpoint_auth_methods_supported).toContain('private_key_jwt')
    expect(as.token_endpoint_auth_signing_alg_values_supported).toContain('ES256')
    const client = { client_id: keyAgent }
    const clientAuth = oauth.PrivateKeyJwt(privateKey)
    const tokens = await oauth.processClientCredentialsResponse(
      as,
      client,
      await oauth.clientCredentialsGrantRequest(
        as,
        client,
        clientAuth,
        new URLSearchParams(),
        options(),
      ),
    )
    expect(decodeJwt(tokens.access_token).payload).toMatchObject({
      sub: keyAgent,
      client_id: keyAgent,
    })
    expect(
      (await s.fetch(context('demo-user-1'), { headers: bearer(tokens.access_token) })).status,
    ).toBe(200)
    const described = await oauth.processIntrospectionResponse(
      as,
      client,
      await oauth.introspectionRequest(as, client, clientAuth, tokens.access_token, options()),
    )
    expect(described).toMatchObject({ active: true, client_id: keyAgent })
    // A refresh authenticates with a fresh assertion too.
    const refreshed = await oauth.processRefreshTokenResponse(
      as,
      client,
      await oauth.refreshTokenGrantRequest(
        as,
        client,
        clientAuth,
        tokens.refresh_token!,
        options(),
      ),
    )
    await oauth.processRevocationResponse(
      await oauth.revocationRequest(as, client, clientAuth, refreshed.refresh_token!, options()),
    )
    expect(
      (await s.fetch(context('demo-user-1'), { headers: bearer(refreshed.access_token) })).status,
    ).toBe(401)
  })

  test('the MCP SDK’s PrivateKeyJwtProvider gets a token for /mcp', async () => {
    const provider = new PrivateKeyJwtProvider({
      clientId: keyAgent,
      privateKey: await exportJWK(privateKey),
      algorithm: 'ES256',
      expectedIssuer: BASE_URL,
      scope: 'context:read',
    })
    const result = await auth(provider, {
      serverUrl: `${BASE_URL}/mcp`,
      fetchFn: into(s) as typeof fetch,
    })
    expect(result).toBe('AUTHORIZED')
    expect(decodeJwt(provider.tokens()!.access_token).payload).toMatchObject({
      aud: `${BASE_URL}/mcp`,
      client_id: keyAgent,
    })
  })

  test('refusals, all 401 invalid_client: replayed, wrong aud, expired, too long-lived, another key, a secret, none 5xx', async () => {
    const sc = isolate()
    const replayed = await assertion()
    expect((await assertedToken(sc, replayed)).status).toBe(200)
    const { privateKey: otherKey } = await generateKeyPair('ES256')
    const now = Math.floor(Date.now() / 1000)
    const table: [string, string | (() => Promise<Response>)][] = [
      ['replayed assertion', replayed],
      ['wrong aud', await assertion({ aud: 'https://elsewhere.test' })],
      ['expired', await assertion({ iat: now - 600, exp: now - 300 })],
      ['exp too far ahead', await assertion({ exp: now + 3600 })],
      ['signed by another key', await assertion({}, otherKey)],
      ['iss is not the client', await assertion({ iss: DEMO_AGENT })],
      ['not a JWT', 'not-a-jwt'],
      [
        'alg none',
        `${btoa(JSON.stringify({ alg: 'none' })).replaceAll('=', '')}.${btoa(JSON.stringify({ iss: keyAgent, sub: keyAgent, aud: BASE_URL, exp: now + 60, jti: 'x' })).replaceAll('=', '')}.`,
      ],
      [
        'the shared secret of a key-bound agent',
        () =>
          sc.fetch(
            TOKEN,
            formPost({
              grant_type: 'client_credentials',
              client_id: keyAgent,
              client_secret: agentSecret(sc),
            }),
          ),
      ],
      [
        'an assertion for a secret-only agent',
        async () => assertedToken(sc, await assertion({ iss: DEMO_AGENT, sub: DEMO_AGENT })),
      ],
    ]
    for (const [name, jwt] of table) {
      const res = typeof jwt === 'string' ? await assertedToken(sc, jwt) : await jwt()
      const body = (await res.json()) as { error?: string }
      expect({ name, status: res.status, error: body.error }).toEqual({
        name,
        status: 401,
        error: 'invalid_client',
      })
    }
    // The token endpoint's URL is an audience too (RFC 7523 §3).
    expect((await assertedToken(sc, await assertion({ aud: `${BASE_URL}${TOKEN}` }))).status).toBe(
      200,
    )
    // Introspection with a replayed assertion: refused as well.
    const reuse = await assertion()
    const introspect = () =>
      sc.fetch(
        INTROSPECT,
        formPost({ token: 'x', client_assertion_type: JWT_BEARER, client_assertion: reuse }),
      )
    expect((await introspect()).status).toBe(200)
    expect((await introspect()).status).toBe(401)
  })

  for (const [label, make] of [
    ['with Redis', () => isolate()],
    ['without Redis', withoutRedis],
  ] as const) {
    test(`the same assertion 50× at once (${label}): exactly one accepted`, async () => {
      const sc = make()
      if (label === 'with Redis' && !s.hasRedis) throw new Error('the stack has no Redis')
      const jwt = await assertion()
      const answers = await Promise.all(Array.from({ length: 50 }, () => assertedToken(sc, jwt)))
      const statuses = answers.map((r) => r.status)
      expect(statuses.filter((st) => st === 200)).toHaveLength(1)
      expect(statuses.filter((st) => st !== 200 && st !== 401)).toEqual([])
    })
  }
})
