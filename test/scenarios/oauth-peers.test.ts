// Standard OAuth clients we did not write, unmodified, against the app in both runtimes:
// oauth4webapi (a strict RFC 6749/7009/7662/8414/9068 client), jose's remote JWKS, and the
// official MCP TypeScript SDK's discovery and client-credentials provider. Their fetch is
// routed into the app (each takes a custom fetch), so every answer is also contract-checked.
import {
  auth,
  discoverAuthorizationServerMetadata,
  discoverOAuthProtectedResourceMetadata,
} from '@modelcontextprotocol/sdk/client/auth.js'
import { ClientCredentialsProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js'
import { createRemoteJWKSet, customFetch as joseFetch, jwtVerify } from 'jose'
import * as oauth from 'oauth4webapi'
import { describe, expect, test } from 'vitest'
import { agentSecret, bearer, DEMO_AGENT, decodeJwt } from '../support/agents.ts'
import { newSigningKey } from '../support/keys.ts'
import { discover as discoverWith, into, peerOptions } from '../support/peers.ts'
import { BASE_URL, randomSecret, type Scenario, scenario } from '../support/scenario.ts'

const s = await scenario()
const secret = agentSecret(s)
const CONTEXT = '/api/v1/agent/users/demo-user-1/context'

const options = (sc: Scenario = s) => peerOptions(sc)
const discover = (sc: Scenario = s) => discoverWith(sc)

describe(`oauth4webapi (${s.runtime})`, () => {
  const client: oauth.Client = { client_id: DEMO_AGENT }

  test('discovery → client credentials (basic and post) → validateJwtAccessToken against the JWKS', async () => {
    const as = await discover()
    expect(as.issuer).toBe(BASE_URL)
    expect(as.token_endpoint).toBe(`${BASE_URL}/api/v1/agent/token`)
    for (const clientAuth of [oauth.ClientSecretBasic(secret), oauth.ClientSecretPost(secret)]) {
      const res = await oauth.clientCredentialsGrantRequest(
        as,
        client,
        clientAuth,
        new URLSearchParams({ scope: 'context:read' }),
        options(),
      )
      const tokens = await oauth.processClientCredentialsResponse(as, client, res)
      expect(tokens.token_type).toBe('bearer')
      expect(tokens.scope).toBe('context:read')
      // RFC 9068 validation, the way a resource server of ours would do it: the JWKS, typ,
      // iss, aud, exp, client_id.
      const request = new Request(`${BASE_URL}${CONTEXT}`, { headers: bearer(tokens.access_token) })
      const claims = await oauth.validateJwtAccessToken(as, request, BASE_URL, options())
      expect(claims).toMatchObject({ sub: DEMO_AGENT, client_id: DEMO_AGENT, aud: BASE_URL })
      expect((await s.fetch(CONTEXT, { headers: bearer(tokens.access_token) })).status).toBe(200)
    }
  })

  test('refresh, a lost answer retried, revoke and introspect', async () => {
    const as = await discover()
    const clientAuth = oauth.ClientSecretBasic(secret)
    const first = await oauth.processClientCredentialsResponse(
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
    const refresh = async (token: string) =>
      oauth.processRefreshTokenResponse(
        as,
        client,
        await oauth.refreshTokenGrantRequest(as, client, clientAuth, token, options()),
      )
    // The answer to this refresh is lost: the client never sees `lost`.
    const lost = await refresh(first.refresh_token!)
    // It retries with the token it holds, within the grace period: a fresh pair, no revocation.
    const retried = await refresh(first.refresh_token!)
    expect(retried.refresh_token).not.toBe(lost.refresh_token)
    expect((await s.fetch(CONTEXT, { headers: bearer(retried.access_token) })).status).toBe(200)
    // The lost successor was retired; the one it holds rotates on.
    const next = await refresh(retried.refresh_token!)

    const introspect = async (token: string) =>
      oauth.processIntrospectionResponse(
        as,
        client,
        await oauth.introspectionRequest(as, client, clientAuth, token, options()),
      )
    const described = await introspect(next.access_token)
    expect(described).toMatchObject({
      active: true,
      client_id: DEMO_AGENT,
      sub: DEMO_AGENT,
      iss: BASE_URL,
      aud: BASE_URL,
      token_type: 'Bearer',
    })
    expect((await introspect(next.refresh_token!)).active).toBe(true)
    expect((await introspect(first.refresh_token!)).active).toBe(false) // spent
    expect((await introspect('not-a-token')).active).toBe(false)

    await oauth.processRevocationResponse(
      await oauth.revocationRequest(as, client, clientAuth, next.refresh_token!, options()),
    )
    expect((await introspect(next.refresh_token!)).active).toBe(false)
    expect((await introspect(next.access_token)).active).toBe(false)
    expect((await s.fetch(CONTEXT, { headers: bearer(next.access_token) })).status).toBe(401)
  })

  test('its error handling reads our 400 and 401 answers', async () => {
    const as = await discover()
    const wrong = await oauth.clientCredentialsGrantRequest(
      as,
      client,
      oauth.ClientSecretBasic('not-the-secret'),
      new URLSearchParams(),
      {
        ...options(),
        headers: new Headers(s.from(`198.51.100.${Math.floor(Math.random() * 250)}`)),
      },
    )
    const e401 = await oauth
      .processClientCredentialsResponse(as, client, wrong)
      .catch((e: unknown) => e)
    // A 401 with a challenge: oauth4webapi parses the challenge first (RFC 6749 §5.2 asks
    // for one), and the body it carries is ours.
    expect(e401).toBeInstanceOf(oauth.WWWAuthenticateChallengeError)
    const challenge = e401 as oauth.WWWAuthenticateChallengeError
    expect(challenge.status).toBe(401)
    expect(challenge.cause[0]).toMatchObject({
      scheme: 'basic',
      parameters: { realm: 'agent-api' },
    })
    expect(await challenge.response.json()).toMatchObject({
      error: 'invalid_client',
      code: 'invalid_client',
      status: 401,
    })

    const badScope = await oauth.clientCredentialsGrantRequest(
      as,
      client,
      oauth.ClientSecretPost(secret),
      new URLSearchParams({ scope: 'admin' }),
      options(),
    )
    const e400 = await oauth
      .processClientCredentialsResponse(as, client, badScope)
      .catch((e: unknown) => e)
    expect(e400).toMatchObject({ error: 'invalid_scope', status: 400 })

    const badTarget = await oauth.clientCredentialsGrantRequest(
      as,
      client,
      oauth.ClientSecretPost(secret),
      new URLSearchParams({ resource: 'https://elsewhere.example/' }),
      options(),
    )
    const eTarget = await oauth
      .processClientCredentialsResponse(as, client, badTarget)
      .catch((e: unknown) => e)
    expect(eTarget).toMatchObject({ error: 'invalid_target', status: 400 })

    // A resource is a URI (RFC 8707 §2), compared in its RFC 3986 normal form: the token's
    // aud is our own spelling of it. Another path, a fragment or no URI at all is refused.
    const target = async (resource: string) => {
      const res = await oauth.clientCredentialsGrantRequest(
        as,
        client,
        oauth.ClientSecretPost(secret),
        new URLSearchParams({ resource }),
        options(),
      )
      return oauth
        .processClientCredentialsResponse(as, client, res)
        .then((t) => decodeJwt(t.access_token).payload.aud)
        .catch((e: unknown) => (e as { error?: string }).error)
    }
    const api = BASE_URL
    const mcp = `${BASE_URL}/mcp`
    const upper = api.replace(/^http/, 'HTTP')
    expect({
      'origin with /': await target(new URL(api).href),
      'scheme in capitals': await target(upper),
      'a dot segment': await target(`${api}/x/../mcp`),
      'mcp with /': await target(`${mcp}/`),
      'a fragment': await target(`${mcp}#x`),
      'a backslash': await target(`${api}\\mcp`),
      'no scheme': await target(`//${new URL(api).host}`),
      'an encoded unreserved character': await target(`${api}/%6Dc%70`),
      'an encoded slash': await target(`${api}/%2Fmcp`),
      'empty userinfo': await target(api.replace('://', '://@')),
      'a trailing dot in the host': await target(
        `${new URL(api).protocol}//${new URL(api).host}./mcp`,
      ),
      'a full-width letter in the host': await target(api.replace('a', '\uff41')),
      'a control character at the end': await target(`${mcp}\u0001`),
      'an empty port': await target(`${api}:/mcp`),
    }).toEqual({
      'origin with /': api,
      'scheme in capitals': api,
      'a dot segment': mcp,
      'mcp with /': 'invalid_target',
      'a fragment': 'invalid_target',
      'a backslash': 'invalid_target',
      'no scheme': 'invalid_target',
      'an encoded unreserved character': mcp,
      'an encoded slash': 'invalid_target',
      'empty userinfo': 'invalid_target',
      'a trailing dot in the host': 'invalid_target',
      'a full-width letter in the host': 'invalid_target',
      'a control character at the end': 'invalid_target',
      'an empty port': mcp,
    })
  })

  test('audience (RFC 8693 §2.1) on client credentials and refresh names the target as resource does', async () => {
    const as = await discover()
    const clientAuth = oauth.ClientSecretBasic(secret)
    const mcp = `${BASE_URL}/mcp`
    const grant = async (parameters: URLSearchParams) =>
      oauth.processClientCredentialsResponse(
        as,
        client,
        await oauth.clientCredentialsGrantRequest(as, client, clientAuth, parameters, options()),
      )
    const first = await grant(new URLSearchParams({ audience: mcp }))
    const aud = (token: string) => decodeJwt(token).payload.aud
    expect(aud(first.access_token)).toBe(mcp)
    // A refresh keeps the family's target, or moves it where audience says.
    const kept = await oauth.processRefreshTokenResponse(
      as,
      client,
      await oauth.refreshTokenGrantRequest(as, client, clientAuth, first.refresh_token!, options()),
    )
    expect(aud(kept.access_token)).toBe(mcp)
    const moved = await oauth.processRefreshTokenResponse(
      as,
      client,
      await oauth.refreshTokenGrantRequest(as, client, clientAuth, kept.refresh_token!, {
        ...options(),
        additionalParameters: { audience: BASE_URL },
      }),
    )
    expect(aud(moved.access_token)).toBe(BASE_URL)
    // JSON, as the contract's form 1.
    const json = await s.fetch('/api/v1/agent/token', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ agent_id: DEMO_AGENT, agent_secret: secret, audience: mcp }),
    })
    expect(aud(((await json.json()) as { access_token: string }).access_token)).toBe(mcp)

    for (const parameters of [
      [['audience', 'https://elsewhere.example/']],
      [['audience', 'payments']],
      [
        ['audience', BASE_URL],
        ['audience', mcp],
      ],
      [
        ['audience', BASE_URL],
        ['resource', mcp],
      ],
    ]) {
      const refused = await grant(new URLSearchParams(parameters)).catch((e: unknown) => e)
      expect({ parameters, refused }).toMatchObject({
        parameters,
        refused: { error: 'invalid_target', status: 400 },
      })
    }
  })
})

describe(`jose createRemoteJWKSet (${s.runtime})`, () => {
  test('verifies tokens signed before and after a key rotation, through every phase', async () => {
    const a = await newSigningKey()
    const b = await newSigningKey()
    const prefix = `t:${randomSecret(6)}:`
    const phase = (vars: Record<string, string | undefined>) =>
      s.withEnv({ REDIS_KEY_PREFIX: prefix, DEV_JWT_SIGNING_KEY_PREVIOUS: undefined, ...vars })
    // 0: A signs. 1: B published (as …_PREVIOUS), A signs. 2: B signs, A still published.
    // 3 (after one access lifetime + the JWKS cache time): B alone.
    const phases = [
      phase({ DEV_JWT_SIGNING_KEY: a }),
      phase({ DEV_JWT_SIGNING_KEY: a, DEV_JWT_SIGNING_KEY_PREVIOUS: b }),
      phase({ DEV_JWT_SIGNING_KEY: b, DEV_JWT_SIGNING_KEY_PREVIOUS: a }),
      phase({ DEV_JWT_SIGNING_KEY: b }),
    ]
    const token = async (sc: Scenario) => {
      const res = await sc.fetch('/api/v1/agent/token', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ agent_id: DEMO_AGENT, agent_secret: agentSecret(sc) }),
      })
      return ((await res.json()) as { access_token: string }).access_token
    }
    const jwks = (sc: Scenario) =>
      createRemoteJWKSet(new URL(`${BASE_URL}/.well-known/jwks.json`), {
        [joseFetch]: into(sc) as typeof fetch,
      })
    const verify = (jwt: string, sc: Scenario) =>
      jwtVerify(jwt, jwks(sc), { issuer: BASE_URL, audience: BASE_URL, typ: 'at+jwt' }).then(
        () => 'ok',
        (e: Error) => e.name,
      )
    const signedByA = await token(phases[0]!)
    const signedByB = await token(phases[2]!)
    // During each rolling deploy, a verifier that fetched either side's JWKS takes tokens of both.
    for (const sc of phases.slice(1, 3)) {
      expect(await verify(signedByA, sc)).toBe('ok')
      expect(await verify(signedByB, sc)).toBe('ok')
    }
    expect(await verify(signedByA, phases[0]!)).toBe('ok')
    expect(await verify(signedByB, phases[3]!)).toBe('ok')
    expect(await verify(signedByA, phases[3]!)).toBe('JWKSNoMatchingKey')
    // The JWKS names each key by its thumbprint, current first, cacheable for five minutes.
    const res = await phases[2]!.fetch('/.well-known/jwks.json')
    expect(res.headers.get('cache-control')).toBe('public, max-age=300')
    const { keys } = (await res.json()) as { keys: { kid: string; alg: string }[] }
    expect(keys.map((k) => k.alg)).toEqual(['ES256', 'ES256'])
  })
})

describe(`@modelcontextprotocol/sdk (${s.runtime})`, () => {
  const fetchFn = into(s) as typeof fetch

  test('discovers the protected resource and the authorization server', async () => {
    const prm = await discoverOAuthProtectedResourceMetadata(`${BASE_URL}/mcp`, {}, fetchFn)
    expect(prm).toMatchObject({ resource: `${BASE_URL}/mcp`, authorization_servers: [BASE_URL] })
    const root = await discoverOAuthProtectedResourceMetadata(BASE_URL, {}, fetchFn)
    expect(root.resource).toBe(BASE_URL)
    const as = await discoverAuthorizationServerMetadata(BASE_URL, { fetchFn })
    expect(as).toMatchObject({
      issuer: BASE_URL,
      token_endpoint: `${BASE_URL}/api/v1/agent/token`,
      grant_types_supported: [
        'client_credentials',
        'refresh_token',
        'urn:ietf:params:oauth:grant-type:token-exchange',
      ],
    })
  })

  test('ClientCredentialsProvider obtains a token for the MCP resource', async () => {
    const provider = new ClientCredentialsProvider({
      clientId: DEMO_AGENT,
      clientSecret: secret,
      expectedIssuer: BASE_URL,
      scope: 'context:read',
    })
    const result = await auth(provider, { serverUrl: `${BASE_URL}/mcp`, fetchFn })
    expect(result).toBe('AUTHORIZED')
    const tokens = provider.tokens()
    expect(tokens?.access_token).toBeTruthy()
    const [, payload] = tokens!.access_token.split('.')
    const claims = JSON.parse(atob(payload!.replaceAll('-', '+').replaceAll('_', '/')))
    expect(claims).toMatchObject({
      aud: `${BASE_URL}/mcp`,
      client_id: DEMO_AGENT,
      scope: 'context:read',
    })
    // A token narrowed to /mcp is not one for the REST API (RFC 8707).
    const rest = await s.fetch(CONTEXT, { headers: bearer(tokens!.access_token) })
    expect(rest.status).toBe(401)
    expect(rest.headers.get('www-authenticate')).toContain('error="invalid_token"')
  })
})

describe(`EdDSA (${s.runtime})`, () => {
  test('an Ed25519 key signs, the JWKS publishes it, jose verifies it in this runtime', async () => {
    const ed = s.withEnv({
      DEV_JWT_SIGNING_KEY: await newSigningKey('EdDSA'),
      REDIS_KEY_PREFIX: `t:${randomSecret(6)}:`,
    })
    const res = await ed.fetch('/api/v1/agent/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ agent_id: DEMO_AGENT, agent_secret: agentSecret(ed) }),
    })
    expect(res.status).toBe(200)
    const { access_token } = (await res.json()) as { access_token: string }
    const jwks = createRemoteJWKSet(new URL(`${BASE_URL}/.well-known/jwks.json`), {
      [joseFetch]: into(ed) as typeof fetch,
    })
    const { protectedHeader } = await jwtVerify(access_token, jwks, {
      issuer: BASE_URL,
      audience: BASE_URL,
    })
    expect(protectedHeader.alg).toBe('EdDSA')
    expect((await ed.fetch(CONTEXT, { headers: bearer(access_token) })).status).toBe(200)
  })
})
