// The security table: every forged, expired, misdirected or revoked token is refused with a
// 401 on every protected route, and the same claims correctly signed are accepted. Plus
// scope (403), foreign users (404), and rotating the JWT secret without a failed request.
import { describe, expect, test } from 'vitest'
import { keyId } from '../../src/auth/keys.ts'
import { Secret } from '../../src/kernel/secret.ts'
import { bearer, DEMO_AGENT, decodeJwt, getToken, jsonPost } from '../support/agents.ts'
import { newSigningKey, publicHalf, signWith } from '../support/keys.ts'
import { BASE_URL, randomSecret, type Scenario, scenario } from '../support/scenario.ts'

const s = await scenario()
const now = () => Math.floor(Date.now() / 1000)

interface Route {
  name: string
  scope?: 'context:read' | 'progress:write'
  /** The token endpoints' revocation (a bearer token is one of two ways in). */
  revocation?: boolean
  request: (headers: Record<string, string>) => [string, RequestInit]
}

const update = () => ({
  user_id: 'demo-user-1',
  task_id: `sec-${crypto.randomUUID()}`,
  status: 'in_progress',
  progress: 1,
  occurred_at: new Date(Date.now() - 1000).toISOString(),
})

const PROTECTED_ROUTES: Route[] = [
  {
    name: 'GET /api/v1/agent/users/{id}/context',
    scope: 'context:read',
    request: (headers) => ['/api/v1/agent/users/demo-user-1/context', { headers }],
  },
  {
    name: 'POST /api/v1/agent/progress',
    scope: 'progress:write',
    request: (headers) => ['/api/v1/agent/progress', jsonPost(update(), headers)],
  },
  {
    name: 'GET /api/v1/agent/progress/batches/{id}',
    scope: 'progress:write',
    request: (headers) => [`/api/v1/agent/progress/batches/${crypto.randomUUID()}`, { headers }],
  },
  {
    name: 'POST /api/v1/agent/health',
    request: (headers) => ['/api/v1/agent/health', jsonPost({ status: 'ok' }, headers)],
  },
  {
    name: 'POST /api/v1/agent/token/revoke (bearer)',
    revocation: true,
    request: (headers) => ['/api/v1/agent/token/revoke', jsonPost({ token: 'nothing' }, headers)],
  },
]

type Claims = Record<string, unknown>

async function validClaims(sc: Scenario, over: Claims = {}): Promise<Claims> {
  const env = sc.env.APP_ENV ?? 'development'
  const t = now()
  return {
    iss: BASE_URL,
    aud: BASE_URL,
    sub: DEMO_AGENT,
    client_id: DEMO_AGENT,
    scope: 'context:read progress:write',
    env,
    jti: crypto.randomUUID(),
    iat: t,
    nbf: t,
    exp: t + 600,
    ...over,
  }
}

const b64 = (value: unknown) =>
  btoa(JSON.stringify(value)).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '')

/** A deployment under test and how its own tokens are signed. */
interface Deployment {
  name: string
  sc: Scenario
  key: { jwk: string } | { secret: string }
}

/** [description, how to make the token] — each must be refused with 401. */
function forgeries(d: Deployment): [string, () => Promise<string>][] {
  const { sc, key } = d
  const sign = (claims: Claims, header: Record<string, unknown> = {}) =>
    signWith(key, claims, header)
  const ours = async () => decodeJwt(await sign(await validClaims(sc))).header
  const common: [string, () => Promise<string>][] = [
    [
      'alg: none',
      async () => `${b64({ alg: 'none', typ: 'at+jwt' })}.${b64(await validClaims(sc))}.`,
    ],
    [
      'an RS256 header on our signature',
      async () => {
        const [, payload, signature] = (await sign(await validClaims(sc))).split('.')
        return `${b64({ ...(await ours()), alg: 'RS256' })}.${payload}.${signature}`
      },
    ],
    [
      'our own token with its signature padded (RFC 7515 §2: base64url without padding)',
      async () => `${await sign(await validClaims(sc))}==`,
    ],
    [
      'a tampered payload',
      async () => {
        const [header, , signature] = (await sign(await validClaims(sc))).split('.')
        return `${header}.${b64(await validClaims(sc, { sub: 'demo-agent-2' }))}.${signature}`
      },
    ],
    [
      'a signature by another key',
      async () =>
        'jwk' in key
          ? signWith({ jwk: await newSigningKey() }, await validClaims(sc))
          : signWith({ secret: randomSecret() }, await validClaims(sc)),
    ],
    [
      'another key with our kid',
      async () =>
        'jwk' in key
          ? signWith({ jwk: await newSigningKey() }, await validClaims(sc), {
              kid: (await ours()).kid,
            })
          : signWith({ secret: randomSecret() }, await validClaims(sc), {
              kid: (await ours()).kid,
            }),
    ],
    ['a wrong audience', async () => sign(await validClaims(sc, { aud: 'someone-else' }))],
    [
      'a token for the MCP resource (RFC 8707)',
      async () => sign(await validClaims(sc, { aud: `${BASE_URL}/mcp` })),
    ],
    [
      'another issuer',
      async () => sign(await validClaims(sc, { iss: 'https://elsewhere.example' })),
    ],
    [
      'the env claim of another environment',
      async () => sign(await validClaims(sc, { env: 'production' })),
    ],
    [
      'an expired token',
      async () =>
        sign(await validClaims(sc, { exp: now() - 120, iat: now() - 900, nbf: now() - 900 })),
    ],
    ['a token not yet valid', async () => sign(await validClaims(sc, { nbf: now() + 600 }))],
    ['an unknown kid', async () => sign(await validClaims(sc), { kid: 'not-a-known-kid' })],
    ['no kid', async () => sign(await validClaims(sc), { kid: undefined })],
    ['typ JWT instead of at+jwt', async () => sign(await validClaims(sc), { typ: 'JWT' })],
    ['a missing jti', async () => sign(await validClaims(sc, { jti: undefined }))],
    [
      'a missing client_id (RFC 9068)',
      async () => sign(await validClaims(sc, { client_id: undefined })),
    ],
    ['garbage', async () => 'garbage'],
    ['three dots of garbage', async () => 'a.b.c'],
    ['a token over 8 KiB', async () => `${'a'.repeat(9000)}.b.c`],
  ]
  if (!('jwk' in key)) return common
  return [
    ...common,
    [
      // The classic confusion: the public key (as the JWKS publishes it) used as an HMAC secret.
      'HS256 made with our public key as the secret, under our kid',
      async () => {
        const header = { alg: 'HS256', typ: 'at+jwt', kid: (await ours()).kid }
        const input = `${b64(header)}.${b64(await validClaims(sc))}`
        const secretKey = await crypto.subtle.importKey(
          'raw',
          new TextEncoder().encode(JSON.stringify(publicHalf(key.jwk))),
          { name: 'HMAC', hash: 'SHA-256' },
          false,
          ['sign'],
        )
        const mac = await crypto.subtle.sign('HMAC', secretKey, new TextEncoder().encode(input))
        const sig = btoa(String.fromCharCode(...new Uint8Array(mac)))
          .replaceAll('+', '-')
          .replaceAll('/', '_')
          .replace(/=+$/, '')
        return `${input}.${sig}`
      },
    ],
    [
      'an HS256 token signed with the retired JWT secret',
      async () => signWith({ secret: randomSecret() }, await validClaims(sc)),
    ],
  ]
}

const signed: Deployment = { name: 'ES256', sc: s, key: { jwk: s.env.DEV_JWT_SIGNING_KEY! } }
const hmacSecret = randomSecret()
const hmacOnly: Deployment = {
  name: 'HS256 only',
  sc: s.withEnv({ DEV_JWT_SIGNING_KEY: undefined, DEV_JWT_SECRET: hmacSecret }),
  key: { secret: hmacSecret },
}

describe(`every protected route refuses forged tokens (${s.runtime})`, () => {
  for (const route of PROTECTED_ROUTES) {
    describe(route.name, () => {
      // The revocation endpoint is the authorization server's: a token for either resource
      // of ours authenticates it.
      const table = forgeries(signed).filter(
        ([name]) => !(route.revocation && name.includes('MCP resource')),
      )
      test.each(table)('%s → 401 invalid_token', async (_name, make) => {
        const [path, init] = route.request(bearer(await make()))
        const res = await s.fetch(path, init)
        expect(res.status).toBe(401)
        const challenge = res.headers.get('www-authenticate') ?? ''
        expect(challenge).toContain('error="invalid_token"')
        expect(challenge).toContain(
          `resource_metadata="${BASE_URL}/.well-known/oauth-protected-resource"`,
        )
        expect((await res.json()).code).toBe('invalid_token')
      })

      test('no token → 401 with a bare challenge (RFC 6750 §3.1, RFC 9728 §5.1)', async () => {
        const [path, init] = route.request({})
        const res = await s.fetch(path, init)
        expect(res.status).toBe(401)
        // The revocation endpoint offers client authentication too.
        expect(res.headers.get('www-authenticate')).toBe(
          route.revocation
            ? 'Basic realm="agent-api", Bearer realm="agent-api"'
            : `Bearer realm="agent-api", resource_metadata="${BASE_URL}/.well-known/oauth-protected-resource"`,
        )
      })

      test('a revoked jti → 401', async () => {
        const token = (await getToken(s)).access_token
        const jti = String(decodeJwt(token).payload.jti)
        await s.fetch('/api/v1/agent/token/revoke', jsonPost({ token: jti }, bearer(token)))
        const [path, init] = route.request(bearer(token))
        expect((await s.fetch(path, init)).status).toBe(401)
      })

      test('the control: the same claims, correctly signed, are accepted', async () => {
        const [path, init] = route.request(bearer(await signWith(signed.key, await validClaims(s))))
        const res = await s.fetch(path, init)
        expect([200, 202, 404]).toContain(res.status)
      })

      if (route.scope) {
        test(`without ${route.scope} → 403 insufficient_scope`, async () => {
          const other = route.scope === 'context:read' ? 'progress:write' : 'context:read'
          const [path, init] = route.request(
            bearer(await signWith(signed.key, await validClaims(s, { scope: other }))),
          )
          const res = await s.fetch(path, init)
          expect(res.status).toBe(403)
          const challenge = res.headers.get('www-authenticate') ?? ''
          expect(challenge).toContain('error="insufficient_scope"')
          expect(challenge).toContain(`scope="${route.scope}"`)
          expect(challenge).toContain('resource_metadata=')
        })
      }
    })
  }
})

describe(`an HS256-only deployment refuses forged tokens (${s.runtime})`, () => {
  const [route] = PROTECTED_ROUTES
  test.each(forgeries(hmacOnly))('%s → 401 invalid_token', async (_name, make) => {
    const [path, init] = route!.request(bearer(await make()))
    const res = await hmacOnly.sc.fetch(path, init)
    expect(res.status).toBe(401)
    expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"')
  })

  test('the control, and its own tokens: HS256 with a fingerprint kid, an empty JWKS', async () => {
    const [path, init] = route!.request(bearer(await signWith(hmacOnly.key, await validClaims(s))))
    expect((await hmacOnly.sc.fetch(path, init)).status).toBe(200)
    const issued = await getToken(hmacOnly.sc)
    expect(decodeJwt(issued.access_token).header).toMatchObject({
      alg: 'HS256',
      kid: await keyId(new Secret(hmacSecret)),
    })
    const jwks = await hmacOnly.sc.fetch('/.well-known/jwks.json')
    expect(await jwks.json()).toEqual({ keys: [] })
  })
})

describe(`tokens do not cross environments (${s.runtime})`, () => {
  test('a token really signed with the staging secret is refused by production', async () => {
    const shared = { STAGING_JWT_SECRET: randomSecret(), PROD_JWT_SECRET: randomSecret() }
    const staging = s.withEnv({
      APP_ENV: 'staging',
      STAGING_AGENT_SECRET: randomSecret(),
      ...shared,
    })
    const production = s.withEnv({
      APP_ENV: 'production',
      PROD_AGENT_SECRET: randomSecret(),
      ...shared,
    })
    const token = (await getToken(staging)).access_token
    const context = '/api/v1/agent/users/demo-user-1/context'
    expect((await staging.fetch(context, { headers: bearer(token) })).status).toBe(200)
    expect((await production.fetch(context, { headers: bearer(token) })).status).toBe(401)
    // Even when production holds the staging secret (a misconfiguration), the env claim differs.
    const confused = s.withEnv({
      APP_ENV: 'production',
      PROD_AGENT_SECRET: randomSecret(),
      PROD_JWT_SECRET: shared.STAGING_JWT_SECRET,
    })
    expect((await confused.fetch(context, { headers: bearer(token) })).status).toBe(401)
  })
})

describe(`rotating the JWT secret (${s.runtime})`, () => {
  test('a rolling rotation fails not a single request', async () => {
    const x = randomSecret()
    const y = randomSecret()
    const prefix = `t:${randomSecret(6)}:`
    const isolate = (vars: Record<string, string | undefined>) =>
      s.withEnv({
        REDIS_KEY_PREFIX: prefix,
        DEV_JWT_SIGNING_KEY: undefined,
        DEV_JWT_SECRET_PREVIOUS: undefined,
        ...vars,
      })
    // Phase 0: X signs. Phase 1: X signs, Y is accepted. Phase 2: Y signs, X is accepted.
    // Phase 3 (after one access lifetime): Y alone.
    const phase0 = isolate({ DEV_JWT_SECRET: x })
    const phase1 = isolate({ DEV_JWT_SECRET: x, DEV_JWT_SECRET_PREVIOUS: y })
    const phase2 = isolate({ DEV_JWT_SECRET: y, DEV_JWT_SECRET_PREVIOUS: x })
    const phase3 = isolate({ DEV_JWT_SECRET: y })
    const context = '/api/v1/agent/users/demo-user-1/context'

    const failures: string[] = []
    // During each rolling deploy, clients hold tokens from either side and hit either side.
    for (const [from, to] of [
      [phase0, phase1],
      [phase1, phase2],
    ] as const) {
      const tokens = [(await getToken(from)).access_token, (await getToken(to)).access_token]
      for (const token of tokens) {
        for (const target of [from, to]) {
          const res = await target.fetch(context, { headers: bearer(token) })
          if (res.status !== 200)
            failures.push(`${res.status} from ${target === from ? 'old' : 'new'} side`)
        }
      }
    }
    expect(failures).toEqual([])

    // kid names the secret that signed, before and after it changes role.
    const signedByY = (await getToken(phase2)).access_token
    expect(decodeJwt(signedByY).header.kid).toBe(await keyId(new Secret(y)))
    expect((await phase3.fetch(context, { headers: bearer(signedByY) })).status).toBe(200)
    // An X-signed token is refused once X is dropped: hence waiting one access lifetime.
    const signedByX = (await getToken(phase1)).access_token
    expect((await phase3.fetch(context, { headers: bearer(signedByX) })).status).toBe(401)
  })
})

describe(`rotating the signing key (${s.runtime})`, () => {
  const context = '/api/v1/agent/users/demo-user-1/context'
  const prefix = `t:${randomSecret(6)}:`
  const isolate = (vars: Record<string, string | undefined>) =>
    s.withEnv({
      REDIS_KEY_PREFIX: prefix,
      DEV_JWT_SIGNING_KEY_PREVIOUS: undefined,
      DEV_JWT_SECRET: undefined,
      DEV_JWT_SECRET_PREVIOUS: undefined,
      ...vars,
    })

  test('the runbook, step by step: publish, sign, drop — not a single request fails', async () => {
    const a = await newSigningKey()
    const b = await newSigningKey()
    // 0: A signs. 1: B published as …_PREVIOUS (verifies, never signs). 2: B signs, A is
    // …_PREVIOUS. 3 (one access lifetime + the JWKS cache time later): B alone.
    const phase0 = isolate({ DEV_JWT_SIGNING_KEY: a })
    const phase1 = isolate({ DEV_JWT_SIGNING_KEY: a, DEV_JWT_SIGNING_KEY_PREVIOUS: b })
    const phase2 = isolate({ DEV_JWT_SIGNING_KEY: b, DEV_JWT_SIGNING_KEY_PREVIOUS: a })
    const phase3 = isolate({ DEV_JWT_SIGNING_KEY: b })
    const failures: string[] = []
    for (const [from, to] of [
      [phase0, phase1],
      [phase1, phase2],
      [phase2, phase3],
    ] as const) {
      // Phase 3 follows one access lifetime after phase 2 began: only phase-2 tokens remain.
      const tokens = [
        (await getToken(to === phase3 ? to : from)).access_token,
        (await getToken(to)).access_token,
      ]
      for (const token of tokens) {
        for (const target of [from, to]) {
          const res = await target.fetch(context, { headers: bearer(token) })
          if (res.status !== 200) failures.push(`${res.status}`)
        }
      }
    }
    expect(failures).toEqual([])
    // kid is the key's thumbprint, the same whichever role the key has; the JWKS lists both.
    const byB = decodeJwt((await getToken(phase2)).access_token).header.kid
    const jwks = (await (await phase1.fetch('/.well-known/jwks.json')).json()) as {
      keys: { kid: string }[]
    }
    expect(jwks.keys.map((k) => k.kid)).toContain(byB)
    expect(jwks.keys).toHaveLength(2)
    const byA = (await getToken(phase0)).access_token
    expect((await phase3.fetch(context, { headers: bearer(byA) })).status).toBe(401)
  })

  test('moving from HS256 to a key: the old secret verifies as …_JWT_SECRET_PREVIOUS, never signs', async () => {
    const secret = randomSecret()
    const key = await newSigningKey()
    const before = isolate({ DEV_JWT_SIGNING_KEY: undefined, DEV_JWT_SECRET: secret })
    const during = isolate({ DEV_JWT_SIGNING_KEY: key, DEV_JWT_SECRET_PREVIOUS: secret })
    const after = isolate({ DEV_JWT_SIGNING_KEY: key })
    const old = (await getToken(before)).access_token
    expect(decodeJwt(old).header.alg).toBe('HS256')
    expect((await during.fetch(context, { headers: bearer(old) })).status).toBe(200)
    expect(decodeJwt((await getToken(during)).access_token).header.alg).toBe('ES256')
    expect((await after.fetch(context, { headers: bearer(old) })).status).toBe(401)
    // A JWT secret set beside a key neither signs nor verifies.
    const both = isolate({ DEV_JWT_SIGNING_KEY: key, DEV_JWT_SECRET: secret })
    expect((await both.fetch(context, { headers: bearer(old) })).status).toBe(401)
  })

  test('a key pair whose halves do not match fails closed, naming only the variable', async () => {
    const a = JSON.parse(await newSigningKey())
    const b = JSON.parse(await newSigningKey())
    const broken = isolate({ DEV_JWT_SIGNING_KEY: JSON.stringify({ ...a, x: b.x, y: b.y }) })
    const res = await broken.fetch(
      '/api/v1/agent/token',
      jsonPost({ agent_id: DEMO_AGENT, agent_secret: broken.env.DEV_AGENT_SECRET }),
    )
    expect(res.status).toBe(503)
    const body = await res.json()
    expect(body).toMatchObject({ code: 'configuration_error', error: 'temporarily_unavailable' })
    expect(JSON.stringify(body)).not.toContain(a.d)
    expect((await broken.fetch('/.well-known/jwks.json')).status).toBe(503)
  })
})
