// POST /api/v1/agent/health in both runtimes: healthy, Neon refused, Redis refused, a weak
// production secret — and no report ever carries a secret, token or connection string.
import { SignJWT } from 'jose'
import { afterAll, describe, expect, test } from 'vitest'
import { keyId } from '../../src/auth/keys.ts'
import type { HealthReport } from '../../src/contract/health.ts'
import { Secret } from '../../src/kernel/secret.ts'
import { bearer, getToken, jsonPost } from '../support/agents.ts'
import { randomSecret, type Scenario, scenario } from '../support/scenario.ts'

const s = await scenario({
  env: { DATABASE_TIMEOUT_MS: '300', HEALTH_CHECK_TIMEOUT_MS: '300', BREAKER_OPEN_MS: '60000' },
})
const HEALTH = '/api/v1/agent/health'
type Report = HealthReport & { last_seen: string | null; heartbeat: unknown }

const reports: string[] = []
afterAll(() => {
  // No report, in any scenario below, carried a secret, a token or a connection string.
  const everything = reports.join('\n')
  for (const value of Object.values(s.env).filter((v) => v.length >= 20)) {
    expect(everything).not.toContain(value)
  }
  expect(everything).not.toMatch(
    /postgres(ql)?:\/\/|eyJ[\w-]+\.eyJ|rt_[\w-]{43}|Bearer [\w.-]{20,}/,
  )
})

async function report(
  sc: Scenario,
  token: string,
  body?: unknown,
): Promise<{ res: Response; body: Report }> {
  const res = await sc.fetch(
    HEALTH,
    body === undefined ? { method: 'POST', headers: bearer(token) } : jsonPost(body, bearer(token)),
  )
  const text = await res.text()
  reports.push(text)
  return { res, body: JSON.parse(text) as Report }
}

interface ReportMetrics {
  isolate: { uptime_ms: number }
  routes: { route: string; total: number; lastMinute: { p95: number | null } }[]
  cache: Record<string, { hits: number }>
  memory: unknown
}

const check = (r: Report, name: string) => r.health.checks.find((c) => c.name === name)

describe(`agent health report (${s.runtime})`, () => {
  test('healthy: every check, metrics from real traffic, no alerts', async () => {
    const iso = s.withEnv({ ISOLATE: randomSecret(4) })
    const token = (await getToken(iso)).access_token
    for (let i = 0; i < 3; i++)
      await iso.fetch('/api/v1/agent/users/demo-user-1/context', { headers: bearer(token) })
    const { res, body } = await report(iso, token)
    expect(res.status).toBe(200)
    expect(body.agent_id).toBe('demo-agent')
    expect(body.environment).toBe('development')
    expect(body.health.checks.map((c) => c.name)).toEqual([
      'database',
      'redis',
      'circuit_breakers',
      'token_manager',
      'configuration',
    ])
    expect(check(body, 'database')?.status).toBe('pass')
    expect(check(body, 'circuit_breakers')?.status).toBe('pass')
    expect(check(body, 'token_manager')?.status).toBe('pass')
    expect(check(body, 'redis')?.status).toBe(s.hasRedis ? 'pass' : 'warn')
    expect(body.health.alerts).toEqual([])
    expect(body.status).toBe(s.hasRedis ? 'healthy' : 'degraded')
    const metrics = body.health.metrics as unknown as ReportMetrics
    expect(metrics.isolate.uptime_ms).toBeGreaterThanOrEqual(0)
    const route = metrics.routes.find(
      (r: { route: string }) => r.route === '/api/v1/agent/users/:userId/context',
    )
    expect(route?.total).toBe(3)
    expect(route?.lastMinute.p95).toBeGreaterThan(0)
    expect(metrics.cache['user-context']?.hits).toBe(2)
    expect(metrics.memory === 'unavailable' || typeof metrics.memory === 'object').toBe(true)
    expect(body.performance.requestCounts['/api/v1/agent/users/:userId/context']).toBe(3)
    expect(body.performance.uptime).toBeGreaterThanOrEqual(0)
  })

  test('a heartbeat body is stored and shows as last_seen', async () => {
    const token = (await getToken(s)).access_token
    const { body } = await report(s, token, {
      status: 'ok',
      version: '1.2.3',
      details: { queue: 3 },
    })
    expect(body.last_seen).toMatch(/^\d{4}-\d\d-\d\dT/)
    const again = await report(s, token)
    expect(again.body.last_seen).toBe(body.last_seen)
    expect(again.body.heartbeat).toMatchObject({ status: 'ok', version: '1.2.3' })
    const bad = await s.fetch(HEALTH, jsonPost({ status: 'fine' }, bearer(token)))
    expect(bad.status).toBe(400)
  })

  test('Neon refused: unhealthy, the database and breaker checks fail, an alert and a recommendation', async () => {
    const iso = s.withEnv({ ISOLATE: randomSecret(4), REDIS_KEY_PREFIX: `t:${randomSecret(6)}:` })
    const token = (await getToken(iso)).access_token
    await s.neon.setFaults({ refuse: true })
    try {
      // Enough failed reads to open the circuit.
      for (let i = 0; i < 6; i++)
        await iso.fetch('/api/v1/agent/users/demo-user-1/context', { headers: bearer(token) })
      const { res, body } = await report(iso, token)
      expect(res.status).toBe(200)
      expect(body.status).toBe('unhealthy')
      expect(body.health.overall).toBe('UNHEALTHY')
      expect(check(body, 'database')?.status).toBe('fail')
      expect(check(body, 'circuit_breakers')?.status).toBe('fail')
      expect(body.health.alerts).toContainEqual(
        expect.objectContaining({ id: 'circuit_open_neon', severity: 'critical' }),
      )
      expect(body.health.recommendations.join(' ')).toMatch(
        /Neon circuit open since .*check DATABASE_URL/,
      )
    } finally {
      await s.neon.clearFaults()
    }
  })

  test.runIf(s.hasRedis)(
    'Redis refused: the redis check warns and the API still serves',
    async () => {
      const iso = s.withEnv({ ISOLATE: randomSecret(4), REDIS_KEY_PREFIX: `t:${randomSecret(6)}:` })
      const token = (await getToken(iso)).access_token
      await s.redis.setFaults({ refuse: true })
      try {
        const context = await iso.fetch('/api/v1/agent/users/demo-user-1/context', {
          headers: bearer(token),
        })
        expect(context.status).toBe(200)
        const { body } = await report(iso, token)
        expect(check(body, 'redis')?.status).toBe('warn')
        expect(check(body, 'database')?.status).toBe('pass')
        expect(['degraded', 'unhealthy']).toContain(body.status)
        expect(body.status).not.toBe('unhealthy')
      } finally {
        await s.redis.clearFaults()
      }
    },
  )

  test('a production config with a weak secret: the configuration check fails, without revealing it', async () => {
    const jwt = randomSecret()
    const weak = 'weak-secret'
    const prod = s.withEnv({
      APP_ENV: 'production',
      PROD_AGENT_SECRET: weak,
      PROD_JWT_SECRET: jwt,
      ISOLATE: randomSecret(4),
    })
    // The token endpoint refuses (fail closed), so the agent holds a token from before.
    expect(
      (
        await prod.fetch(
          '/api/v1/agent/token',
          jsonPost({ agent_id: 'demo-agent', agent_secret: weak }),
        )
      ).status,
    ).toBe(503)
    const now = Math.floor(Date.now() / 1000)
    const token = await new SignJWT({
      iss: 'https://agent-api.test',
      aud: 'https://agent-api.test',
      sub: 'demo-agent',
      client_id: 'demo-agent',
      scope: 'context:read',
      env: 'production',
      jti: crypto.randomUUID(),
      iat: now,
      nbf: now,
      exp: now + 600,
    })
      .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: await keyId(new Secret(jwt)) })
      .sign(new TextEncoder().encode(jwt))
    // Protected routes fail closed; the health report still answers, to say why.
    expect(
      (await prod.fetch('/api/v1/agent/users/demo-user-1/context', { headers: bearer(token) }))
        .status,
    ).toBe(503)
    const { res, body } = await report(prod, token)
    expect(res.status).toBe(200)
    expect(check(body, 'configuration')?.status).toBe('fail')
    expect(body.status).toBe('unhealthy')
    expect(body.health.alerts).toContainEqual(expect.objectContaining({ id: 'configuration' }))
    const text = JSON.stringify(body)
    expect(text).toContain('PROD_AGENT_SECRET is shorter than 32 bytes')
    expect(text).not.toContain(weak)
    expect(text).not.toContain(jwt)
  })
})
