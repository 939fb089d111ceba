import fc from 'fast-check'
import { describe, expect, test } from 'vitest'
import { detectEnvironment } from '../../../src/config/environment.ts'
import { loadConfig } from '../../../src/config/index.ts'
import { DEVELOPMENT_DEFAULTS, isExampleSecret } from '../../../src/config/secrets.ts'
import { NUMERIC_TUNABLES } from '../../../src/config/tunables.ts'

const STRONG = 'k3Jq9vX2mP7rT5wY8zB4nC6dF1gH0jLs' // 32 bytes, random-looking
const STRONG_2 = 'Zx8Cv7Bn6Mq5Wr4Et3Yu2Io1Pa0SdFgH'
const STRONG_3 = 'Qw9Er8Ty7Ui6Op5As4Df3Gh2Jk1Lz0Xc'
const PROD_OK = {
  APP_ENV: 'production',
  PROD_AGENT_SECRET: STRONG,
  PROD_JWT_SECRET: STRONG_2,
  DATABASE_URL: 'postgres://u:p@ep-x.neon.tech/db',
  CRON_SECRET: 'cron-secret-of-sufficient-length',
  PUBLIC_URL: 'https://api.example.com',
}

const fatal = (env: Record<string, string>) =>
  loadConfig(env)
    .findings.filter((f) => f.severity === 'fatal')
    .map((f) => f.variable)

describe('environment detection', () => {
  test.each([
    [{ APP_ENV: 'staging', VERCEL_ENV: 'production' }, 'staging', 'APP_ENV'],
    [{ VERCEL_ENV: 'production', ENVIRONMENT: 'development' }, 'production', 'VERCEL_ENV'],
    [{ VERCEL_ENV: 'preview' }, 'staging', 'VERCEL_ENV'],
    [{ VERCEL_ENV: 'development', NODE_ENV: 'production' }, 'development', 'VERCEL_ENV'],
    [{ ENVIRONMENT: 'production', NODE_ENV: 'development' }, 'production', 'ENVIRONMENT'],
    [{ NODE_ENV: 'production' }, 'production', 'NODE_ENV'],
    [{ NODE_ENV: 'test' }, 'development', 'NODE_ENV'],
    [{ APP_ENV: '  ', ENVIRONMENT: 'stage' }, 'staging', 'ENVIRONMENT'],
    [{}, 'development', 'default'],
  ])('%o → %s (from %s)', (env, environment, source) => {
    expect(detectEnvironment(env)).toEqual({ environment, source })
  })

  test('an unknown name fails closed as production and says why', () => {
    const decision = detectEnvironment({ APP_ENV: 'prodution' })
    expect(decision.environment).toBe('production')
    expect(decision.problem).toMatch(/APP_ENV has an unknown value/)
    expect(loadConfig({ ...PROD_OK, APP_ENV: 'prodution' }).failClosed).toBe(true)
  })

  test('VERCEL_ENV uses only Vercel vocabulary', () => {
    expect(detectEnvironment({ VERCEL_ENV: 'staging' }).problem).toBeDefined()
  })
})

describe('secrets', () => {
  test('the environment-specific secret wins over the generic one, silently', () => {
    const config = loadConfig({ ...PROD_OK, AGENT_SECRET: STRONG_2, JWT_SECRET: STRONG })
    expect(config.agentSecret?.reveal()).toBe(STRONG)
    expect(config.jwtSecret?.reveal()).toBe(STRONG_2)
    expect(config.findings.filter((f) => /generic/.test(f.message))).toEqual([])
    expect(config.failClosed).toBe(false)
  })

  test('the generic fallback is used with a warning naming the missing variable', () => {
    const { PROD_AGENT_SECRET: _a, PROD_JWT_SECRET: _j, ...rest } = PROD_OK
    const config = loadConfig({ ...rest, AGENT_SECRET: STRONG, JWT_SECRET: STRONG_2 })
    expect(config.agentSecret?.reveal()).toBe(STRONG)
    expect(config.jwtSecret?.reveal()).toBe(STRONG_2)
    const warnings = config.findings.filter((f) => f.severity === 'warning').map((f) => f.message)
    expect(warnings).toContain('PROD_AGENT_SECRET is not set; using the generic AGENT_SECRET')
    expect(warnings).toContain('PROD_JWT_SECRET is not set; using the generic JWT_SECRET')
    expect(config.failClosed).toBe(false)
  })

  test('each environment reads its own prefix only', () => {
    const config = loadConfig({
      APP_ENV: 'staging',
      PROD_AGENT_SECRET: STRONG,
      PROD_JWT_SECRET: STRONG_2,
      DATABASE_URL: PROD_OK.DATABASE_URL,
    })
    expect(config.agentSecret).toBeUndefined()
    expect(config.findings.map((f) => f.variable)).toEqual(
      expect.arrayContaining(['STAGING_AGENT_SECRET', 'STAGING_JWT_SECRET']),
    )
    expect(config.failClosed).toBe(true)
  })

  test('rotation: the previous JWT secret verifies, and equal to current it is ignored', () => {
    // (The previous secret is a third one: the agent secret is refused in that role.)
    const rotating = loadConfig({ ...PROD_OK, PROD_JWT_SECRET_PREVIOUS: STRONG_3 })
    expect(rotating.jwtPreviousSecret?.reveal()).toBe(STRONG_3)
    expect(rotating.failClosed).toBe(false)
    const same = loadConfig({ ...PROD_OK, PROD_JWT_SECRET_PREVIOUS: STRONG_2 })
    expect(same.jwtPreviousSecret).toBeUndefined()
    expect(same.findings.some((f) => /equals the current/.test(f.message))).toBe(true)
    const generic = loadConfig({ ...PROD_OK, JWT_SECRET_PREVIOUS: STRONG_3 })
    expect(generic.jwtPreviousSecret?.reveal()).toBe(STRONG_3)
  })

  test('a JWT secret equal to the agent secret (current or previous) is fatal in production', () => {
    expect(fatal({ ...PROD_OK, PROD_JWT_SECRET: STRONG })).toEqual(['PROD_JWT_SECRET'])
    expect(fatal({ ...PROD_OK, PROD_JWT_SECRET_PREVIOUS: STRONG })).toEqual([
      'PROD_JWT_SECRET_PREVIOUS',
    ])
    expect(fatal({ ...PROD_OK, AGENT_SECRET: STRONG_2, PROD_AGENT_SECRET: '' })).toEqual([
      'PROD_JWT_SECRET',
    ])
    // Staging serves, and says so; the value never appears in the finding.
    const staging = loadConfig({
      APP_ENV: 'staging',
      STAGING_AGENT_SECRET: STRONG,
      STAGING_JWT_SECRET: STRONG,
      DATABASE_URL: PROD_OK.DATABASE_URL,
      PUBLIC_URL: PROD_OK.PUBLIC_URL,
    })
    expect(staging.failClosed).toBe(false)
    const finding = staging.findings.find((f) => f.variable === 'STAGING_JWT_SECRET')
    expect(finding?.severity).toBe('warning')
    expect(JSON.stringify(staging.findings)).not.toContain(STRONG)
  })

  describe('production fails closed', () => {
    test.each([
      ['missing agent secret', { PROD_AGENT_SECRET: '' }, 'PROD_AGENT_SECRET'],
      ['missing JWT secret', { PROD_JWT_SECRET: '' }, 'PROD_JWT_SECRET'],
      ['short agent secret', { PROD_AGENT_SECRET: 'x1y2z3' }, 'PROD_AGENT_SECRET'],
      ['31-byte JWT secret', { PROD_JWT_SECRET: STRONG.slice(0, 31) }, 'PROD_JWT_SECRET'],
      [
        'example JWT secret',
        { PROD_JWT_SECRET: 'change-me-to-a-long-random-string-please' },
        'PROD_JWT_SECRET',
      ],
      ['development default', { PROD_JWT_SECRET: DEVELOPMENT_DEFAULTS.jwt }, 'PROD_JWT_SECRET'],
      ['weak previous secret', { PROD_JWT_SECRET_PREVIOUS: 'old' }, 'PROD_JWT_SECRET_PREVIOUS'],
      ['weak generic fallback', { PROD_AGENT_SECRET: '', AGENT_SECRET: 'short' }, 'AGENT_SECRET'],
      ['missing database', { DATABASE_URL: '' }, 'DATABASE_URL'],
      ['a database URL that is not postgres', { DATABASE_URL: 'mysql://x/y' }, 'DATABASE_URL'],
      [
        'Redis over plain http',
        { UPSTASH_REDIS_REST_URL: 'http://redis.example.com', UPSTASH_REDIS_REST_TOKEN: 't' },
        'UPSTASH_REDIS_REST_URL',
      ],
      [
        'Redis URL without token',
        { UPSTASH_REDIS_REST_URL: 'https://x.upstash.io' },
        'UPSTASH_REDIS_REST_TOKEN',
      ],
      ['mock data', { CONTEXT_FALLBACK_MOCK: 'true' }, 'CONTEXT_FALLBACK_MOCK'],
    ])('%s', (_name, overrides, variable) => {
      const env = Object.fromEntries(
        Object.entries({ ...PROD_OK, ...overrides }).filter(([, v]) => v !== ''),
      )
      const config = loadConfig(env)
      expect(config.failClosed).toBe(true)
      expect(fatal(env)).toContain(variable)
    })

    test('a strong production config is accepted', () => {
      const config = loadConfig(PROD_OK)
      expect(config.findings).toEqual([])
      expect(config.failClosed).toBe(false)
    })
  })

  test('staging has no built-in secret but tolerates a weak one with a warning', () => {
    const base = {
      APP_ENV: 'staging',
      DATABASE_URL: PROD_OK.DATABASE_URL,
      PUBLIC_URL: PROD_OK.PUBLIC_URL,
    }
    expect(loadConfig(base).failClosed).toBe(true)
    const weak = loadConfig({ ...base, STAGING_AGENT_SECRET: 'short', STAGING_JWT_SECRET: STRONG })
    expect(weak.failClosed).toBe(false)
    expect(weak.findings).toContainEqual(
      expect.objectContaining({ variable: 'STAGING_AGENT_SECRET', severity: 'warning' }),
    )
  })

  test('development runs with no configuration, on public built-in secrets, and says so', () => {
    const config = loadConfig({})
    expect(config.environment).toBe('development')
    expect(config.failClosed).toBe(false)
    expect(config.agentSecret?.reveal()).toBe(DEVELOPMENT_DEFAULTS.agent)
    expect(config.findings.map((f) => f.variable)).toEqual(
      expect.arrayContaining(['DEV_AGENT_SECRET', 'DEV_JWT_SECRET', 'DATABASE_URL']),
    )
  })

  test('known example values are recognised, random ones are not', () => {
    for (const example of [
      'changeme',
      'CHANGE_ME_PLEASE_0123456789abcdef',
      'your-jwt-secret-here',
      'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
    ]) {
      expect(isExampleSecret(example)).toBe(true)
    }
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 64 }), (bytes) => {
        const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
        return !isExampleSecret(hex) || /^(.)\1*$/.test(hex)
      }),
    )
  })

  test('secrets never serialise: not in JSON, not in String()', () => {
    const config = loadConfig({
      ...PROD_OK,
      PROD_JWT_SECRET_PREVIOUS: STRONG.split('').reverse().join(''),
    })
    const text = `${JSON.stringify(config)} ${String(config.jwtSecret)} ${config.databaseUrl}`
    for (const value of [STRONG, STRONG_2, PROD_OK.DATABASE_URL, 'u:p@']) {
      expect(text).not.toContain(value)
    }
  })
})

describe('tunables', () => {
  test('defaults per environment: token lifetimes', () => {
    const ttl = (APP_ENV: string) => {
      const t = loadConfig({ APP_ENV }).tunables
      return [t.accessTokenTtlSeconds, t.refreshTokenTtlSeconds]
    }
    expect(ttl('development')).toEqual([8 * 3600, 30 * 86400])
    expect(ttl('staging')).toEqual([3600, 7 * 86400])
    expect(ttl('production')).toEqual([900, 86400])
  })

  test('the contract defaults for batching and caching', () => {
    const t = loadConfig({}).tunables
    expect(t.progressBatchSize).toBe(10)
    expect(t.progressBatchDelayMs).toBe(5000)
    expect(t.contextCacheTtlMs).toBe(300_000)
  })

  test('every tunable can be overridden within bounds, and rejected outside them', () => {
    for (const [name, tunable] of Object.entries(NUMERIC_TUNABLES)) {
      const inRange = loadConfig({ [tunable.variable]: String(tunable.max) })
      if (!inRange.failClosed) {
        expect(inRange.tunables[name as keyof typeof NUMERIC_TUNABLES]).toBe(tunable.max)
      }
      for (const bad of [
        String(tunable.max + 1),
        String(tunable.min - 1),
        'abc',
        '1.5',
        '0x10',
        '1e3',
      ]) {
        const config = loadConfig({ [tunable.variable]: bad })
        expect(
          config.findings.map((f) => f.variable),
          `${tunable.variable}=${bad}`,
        ).toContain(tunable.variable)
        expect(config.failClosed).toBe(true)
      }
    }
  })

  test('cross-field rules', () => {
    expect(fatal({ BREAKER_OPEN_MS: '5000', BREAKER_OPEN_MAX_MS: '1000' })).toContain(
      'BREAKER_OPEN_MAX_MS',
    )
    expect(fatal({ BREAKER_MINIMUM_CALLS: '30', BREAKER_WINDOW_SIZE: '20' })).toContain(
      'BREAKER_MINIMUM_CALLS',
    )
  })

  test('a broken cross-field rule leaves tunables the services can be built with (the defaults)', () => {
    const defaults = loadConfig({}).tunables
    for (const env of [
      { BREAKER_OPEN_MS: '5000', BREAKER_OPEN_MAX_MS: '1000' },
      { BREAKER_MINIMUM_CALLS: '30', BREAKER_WINDOW_SIZE: '20' },
      { REFRESH_TOKEN_TTL_SECONDS: '600', ACCESS_TOKEN_TTL_SECONDS: '3600' },
      { PROGRESS_CLAIM_TIMEOUT_MS: '1000', DATABASE_TIMEOUT_MS: '5000' },
    ]) {
      const { tunables, failClosed } = loadConfig(env)
      expect(failClosed).toBe(true)
      expect(tunables).toEqual(defaults)
    }
  })

  test('mock fallback is allowed in development only', () => {
    expect(loadConfig({ CONTEXT_FALLBACK_MOCK: 'true' }).tunables.contextFallbackMock).toBe(true)
    const staging = loadConfig({ APP_ENV: 'staging', CONTEXT_FALLBACK_MOCK: 'true' })
    expect(staging.tunables.contextFallbackMock).toBe(false)
    expect(staging.failClosed).toBe(true)
  })
})

describe('signing keys and the public URL', () => {
  const EC = {
    kty: 'EC',
    crv: 'P-256',
    x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU',
    y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0',
    d: 'jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI',
  }
  const { PROD_JWT_SECRET: _unused, ...NO_SECRET } = PROD_OK

  test('a private JWK signs; the JWT secret is then neither required nor used', () => {
    const config = loadConfig({ ...NO_SECRET, PROD_JWT_SIGNING_KEY: JSON.stringify(EC) })
    expect(config.failClosed).toBe(false)
    expect(config.signingKey).toMatchObject({ variable: 'PROD_JWT_SIGNING_KEY', alg: 'ES256' })
    expect(config.jwtSecret).toBeUndefined()
    const both = loadConfig({ ...PROD_OK, PROD_JWT_SIGNING_KEY: JSON.stringify(EC) })
    expect(both.jwtSecret).toBeUndefined()
    expect(both.findings).toContainEqual(
      expect.objectContaining({ variable: 'PROD_JWT_SECRET', severity: 'warning' }),
    )
  })

  test.each([
    ['not JSON', '{kty: EC'],
    ['a public key only', JSON.stringify({ ...EC, d: undefined })],
    ['an unsupported key type', JSON.stringify({ kty: 'RSA', n: 'x', e: 'AQAB', d: 'y' })],
    ['a curve we do not sign with', JSON.stringify({ ...EC, crv: 'P-384' })],
    ['a mangled coordinate', JSON.stringify({ ...EC, x: 'short' })],
    ['an alg its key cannot make', JSON.stringify({ ...EC, alg: 'RS256' })],
  ])('%s is fatal, naming the variable and never the value', (_name, value) => {
    const config = loadConfig({ ...NO_SECRET, PROD_JWT_SIGNING_KEY: value })
    expect(config.failClosed).toBe(true)
    expect(fatal({ ...NO_SECRET, PROD_JWT_SIGNING_KEY: value })).toEqual(['PROD_JWT_SIGNING_KEY'])
    expect(JSON.stringify(config.findings)).not.toContain(EC.d)
  })

  test('Ed25519 keys sign EdDSA', () => {
    const ed = {
      kty: 'OKP',
      crv: 'Ed25519',
      x: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo',
      d: 'nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A',
    }
    const config = loadConfig({ ...NO_SECRET, PROD_JWT_SIGNING_KEY: JSON.stringify(ed) })
    expect(config.signingKey?.alg).toBe('EdDSA')
  })

  test.each([
    ['missing', undefined],
    ['plain http', 'http://api.example.com'],
    ['with a path', 'https://api.example.com/v1'],
    ['not a URL', 'api.example.com'],
  ])('PUBLIC_URL %s is fatal outside development', (_name, value) => {
    const env = { ...PROD_OK, PUBLIC_URL: value } as Record<string, string>
    if (value === undefined) delete env.PUBLIC_URL
    expect(fatal(env)).toEqual(['PUBLIC_URL'])
  })

  test('PUBLIC_URL is the origin, no trailing slash; development may leave it unset or use loopback http', () => {
    expect(loadConfig({ ...PROD_OK, PUBLIC_URL: 'https://API.example.com/' }).publicUrl).toBe(
      'https://api.example.com',
    )
    expect(loadConfig({}).publicUrl).toBeUndefined()
    expect(loadConfig({ PUBLIC_URL: 'http://127.0.0.1:8787' }).publicUrl).toBe(
      'http://127.0.0.1:8787',
    )
    expect(loadConfig({ PUBLIC_URL: 'http://192.0.2.1' }).failClosed).toBe(true)
  })
})
