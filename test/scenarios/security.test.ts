// The security table: every forged, expired, misdirected or revoked token is refused with a
// 401 on every protected route, and the same claims correctly signed are accepted. Plus
// scope (403), foreign users (404), and rotating the JWT secret without a failed request.
import { SignJWT } from 'jose'
import { describe, expect, test } from 'vitest'
import { keyId } from '../../src/auth/keys.ts'
import { Secret } from '../../src/kernel/secret.ts'
import { bearer, DEMO_AGENT, decodeJwt, getToken, jsonPost } from '../support/agents.ts'
import { randomSecret, type Scenario, scenario } from '../support/scenario.ts'

const s = await scenario()
const now = () => Math.floor(Date.now() / 1000)

interface Route {
  name: string
  scope?: 'context:read' | 'progress:write'
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
    request: (headers) => ['/api/v1/agent/token/revoke', jsonPost({ token: 'nothing' }, headers)],
  },
]

type Claims = Record<string, unknown>

async function validClaims(sc: Scenario, over: Claims = {}): Promise<Claims> {
  const env = sc.env.APP_ENV ?? 'development'
  const t = now()
  return {
    iss: `agent-api/${env}`,
    aud: 'agent-api',
    sub: DEMO_AGENT,
    scope: 'context:read progress:write',
    env,
    jti: crypto.randomUUID(),
    iat: t,
    nbf: t,
    exp: t + 600,
    ...over,
  }
}

async function sign(
  claims: Claims,
  secret: string,
  header: Record<string, unknown> = {},
): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({
      alg: 'HS256',
      typ: 'at+jwt',
      kid: await keyId(new Secret(secret)),
      ...header,
    })
    .sign(new TextEncoder().encode(secret))
}

const b64 = (value: unknown) =>
  btoa(JSON.stringify(value)).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '')

const secret = s.env.DEV_JWT_SECRET!

/** [description, how to make the token] — each must be refused with 401. */
const FORGERIES: [string, () => Promise<string>][] = [
  ['alg: none', async () => `${b64({ alg: 'none', typ: 'at+jwt' })}.${b64(await validClaims(s))}.`],
  [
    'an RS256 header on an HMAC signature',
    async () => {
      const token = await sign(await validClaims(s), secret)
      const [, payload, signature] = token.split('.')
      return `${b64({ alg: 'RS256', typ: 'at+jwt', kid: await keyId(new Secret(secret)) })}.${payload}.${signature}`
    },
  ],
  [
    'a tampered payload',
    async () => {
      const [header, , signature] = (await sign(await validClaims(s), secret)).split('.')
      return `${header}.${b64(await validClaims(s, { sub: 'demo-agent-2' }))}.${signature}`
    },
  ],
  ['a signature by another key', async () => sign(await validClaims(s), randomSecret())],
  [
    'another key with our kid',
    async () =>
      sign(await validClaims(s), randomSecret(), { kid: await keyId(new Secret(secret)) }),
  ],
  ['a wrong audience', async () => sign(await validClaims(s, { aud: 'someone-else' }), secret)],
  [
    'the issuer of another environment',
    async () => sign(await validClaims(s, { iss: 'agent-api/production' }), secret),
  ],
  [
    'the env claim of another environment',
    async () => sign(await validClaims(s, { env: 'production' }), secret),
  ],
  [
    'an expired token',
    async () =>
      sign(await validClaims(s, { exp: now() - 120, iat: now() - 900, nbf: now() - 900 }), secret),
  ],
  ['a token not yet valid', async () => sign(await validClaims(s, { nbf: now() + 600 }), secret)],
  ['an unknown kid', async () => sign(await validClaims(s), secret, { kid: 'not-a-known-kid' })],
  ['no kid', async () => sign(await validClaims(s), secret, { kid: undefined })],
  ['typ JWT instead of at+jwt', async () => sign(await validClaims(s), secret, { typ: 'JWT' })],
  ['a missing jti', async () => sign(await validClaims(s, { jti: undefined }), secret)],
  ['garbage', async () => 'garbage'],
  ['three dots of garbage', async () => 'a.b.c'],
  ['a token over 8 KiB', async () => `${'a'.repeat(9000)}.b.c`],
]

describe(`every protected route refuses forged tokens (${s.runtime})`, () => {
  for (const route of PROTECTED_ROUTES) {
    describe(route.name, () => {
      test.each(FORGERIES)('%s → 401 invalid_token', async (_name, make) => {
        const [path, init] = route.request(bearer(await make()))
        const res = await s.fetch(path, init)
        expect(res.status).toBe(401)
        expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"')
        expect((await res.json()).code).toBe('invalid_token')
      })

      test('no token → 401', async () => {
        const [path, init] = route.request({})
        const res = await s.fetch(path, init)
        expect(res.status).toBe(401)
        expect(res.headers.get('www-authenticate')).toMatch(/\bBearer realm=/)
      })

      test('a revoked jti → 401', async () => {
        const token = (await getToken(s)).access_token
        const jti = String(decodeJwt(token).payload.jti)
        await s.fetch('/api/v1/agent/token/revoke', jsonPost({ token: jti }, bearer(token)))
        const [path, init] = route.request(bearer(token))
        expect((await s.fetch(path, init)).status).toBe(401)
      })

      test('the control: the same claims, correctly signed, are accepted', async () => {
        const [path, init] = route.request(bearer(await sign(await validClaims(s), secret)))
        const res = await s.fetch(path, init)
        expect([200, 202, 404]).toContain(res.status)
      })

      if (route.scope) {
        test(`without ${route.scope} → 403 insufficient_scope`, async () => {
          const other = route.scope === 'context:read' ? 'progress:write' : 'context:read'
          const [path, init] = route.request(
            bearer(await sign(await validClaims(s, { scope: other }), secret)),
          )
          const res = await s.fetch(path, init)
          expect(res.status).toBe(403)
          expect(res.headers.get('www-authenticate')).toContain('error="insufficient_scope"')
        })
      }
    })
  }
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
    // Even when production holds the staging secret (a misconfiguration), issuer and env differ.
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
      s.withEnv({ REDIS_KEY_PREFIX: prefix, DEV_JWT_SECRET_PREVIOUS: undefined, ...vars })
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
