// GET /health (liveness) and GET /health/ready (readiness), in both runtimes.
import { afterEach, describe, expect, test } from 'vitest'
import { agentSecret, bearer, DEMO_AGENT, jsonPost } from '../support/agents.ts'
import { randomSecret, type Scenario, scenario } from '../support/scenario.ts'

const s = await scenario({ env: { HEALTH_CHECK_TIMEOUT_MS: '300' } })

type HealthBody = { status: string; version: string; checks: Record<string, { status: string }[]> }

async function health(path: string) {
  const res = await s.fetch(path)
  return { res, body: (await res.json()) as HealthBody }
}

describe(`health (${s.runtime})`, () => {
  afterEach(async () => {
    await s.neon.clearFaults()
    if (s.hasRedis) await s.redis.clearFaults()
  })

  test('liveness answers health+json without calling any upstream', async () => {
    await s.neon.resetStats()
    const { res, body } = await health('/health')
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('application/health+json')
    expect(body.status).toBe('pass')
    expect(body.version).toMatch(/^\d+\.\d+\.\d+/)
    expect(Object.keys(body.checks)).toEqual(['configuration'])
    expect((await s.neon.stats()).requests).toBe(0)
  })

  test('liveness stays up while the database is down', async () => {
    await s.neon.setFaults({ refuse: true })
    const { res } = await health('/health')
    expect(res.status).toBe(200)
  })

  test('readiness passes with the database and Redis answering, and times them', async () => {
    const { res, body } = await health('/health/ready')
    expect(res.status).toBe(200)
    expect(body.status).toBe('pass')
    expect(body.checks.database?.[0]?.status).toBe('pass')
    expect(body.checks.redis?.[0]?.status).toBe(s.hasRedis ? 'pass' : 'warn')
    expect(res.headers.get('server-timing')).toMatch(/\bdb;dur=/)
    if (s.hasRedis) expect(res.headers.get('server-timing')).toMatch(/\bredis;dur=/)
  })

  test.each([
    ['refused', { refuse: true }],
    ['hanging', { hang: true }],
    ['erroring', { errorRate: 1 }],
  ])('readiness fails with 503 + Retry-After when the database is %s', async (_name, plan) => {
    await s.neon.setFaults(plan)
    const started = Date.now()
    const { res, body } = await health('/health/ready')
    expect(Date.now() - started).toBeLessThan(2000) // the check's own short timeout, not the DB's
    expect(res.status).toBe(503)
    expect(res.headers.get('retry-after')).toMatch(/^\d+$/)
    expect(body.status).toBe('fail')
    expect(body.checks.database?.[0]?.status).toBe('fail')
  })

  test.runIf(s.hasRedis)('Redis down is a warning: ready stays 200', async () => {
    await s.redis.setFaults({ refuse: true })
    const { res, body } = await health('/health/ready')
    expect(res.status).toBe(200)
    expect(body.status).toBe('warn')
    expect(body.checks.redis?.[0]?.status).toBe('warn')
  })

  test('neither endpoint shows internals beyond pass/warn/fail', async () => {
    await s.neon.setFaults({ refuse: true })
    const { body } = await health('/health/ready')
    const text = JSON.stringify(body)
    for (const secret of Object.values(s.env).filter((v) => v.length >= 16)) {
      expect(text).not.toContain(secret)
    }
    expect(text).not.toMatch(/postgres:|http:\/\/127|ECONN|fetch failed/i)
  })
})

describe(`configuration fails closed (${s.runtime})`, () => {
  test('a production config with a weak secret: liveness warns nothing away, readiness fails', async () => {
    const prod = s.withEnv({
      APP_ENV: 'production',
      PROD_AGENT_SECRET: 'short',
      PROD_JWT_SECRET: 'change-me-change-me-change-me-change-me',
    })
    const live = await prod.fetch('/health')
    expect(((await live.json()) as HealthBody).status).toBe('fail')
    const ready = await prod.fetch('/health/ready')
    expect(ready.status).toBe(503)
    const body = (await ready.json()) as HealthBody
    expect(body.checks.configuration?.[0]?.status).toBe('fail')
    expect(JSON.stringify(body)).not.toContain('change-me')
  })
})

describe(`readiness means "would serve" (${s.runtime})`, () => {
  const TOKEN = '/api/v1/agent/token'

  test('probes with a short deadline against a slow database never open the shared circuit', async () => {
    // The database answers in 400 ms: healthy for the 2 s query timeout, too slow for the probe.
    const iso = s.withEnv({
      HEALTH_CHECK_TIMEOUT_MS: '100',
      DATABASE_TIMEOUT_MS: '2000',
      BREAKER_CONSECUTIVE_FAILURES: '3',
      BREAKER_MINIMUM_CALLS: '3',
      BREAKER_WINDOW_SIZE: '5',
      REDIS_KEY_PREFIX: `t:${randomSecret(6)}:`,
      ISOLATE: randomSecret(4),
    })
    await s.neon.setFaults({ latencyMs: 400 })
    for (let i = 0; i < 6; i++) {
      const ready = await iso.fetch('/health/ready')
      expect(ready.status).toBe(503) // the probe's own deadline: not ready by its measure
    }
    // Ordinary queries are not refused: the circuit stayed closed.
    const token = await iso.fetch(
      TOKEN,
      jsonPost({ agent_id: DEMO_AGENT, agent_secret: agentSecret(s) }),
    )
    expect(token.status).toBe(200)
    await s.neon.clearFaults()
    const report = await (
      await iso.fetch(
        '/api/v1/agent/health',
        jsonPost({}, bearer((await token.json()).access_token)),
      )
    ).json()
    const breakers = report.health.checks.find(
      (c: { name: string }) => c.name === 'circuit_breakers',
    )
    expect(breakers.status).toBe('pass')
  })

  test('no database configured: the token endpoint and readiness both answer 503', async () => {
    const iso = s.withEnv({ DATABASE_URL: undefined, ISOLATE: randomSecret(4) })
    const token = await iso.fetch(
      TOKEN,
      jsonPost({ agent_id: DEMO_AGENT, agent_secret: agentSecret(s) }),
    )
    expect(token.status).toBe(503)
    const { res } = await healthOf(iso, '/health/ready')
    expect(res.status).toBe(503)
    expect(res.headers.get('retry-after')).toMatch(/^\d+$/)
  })

  test('an open database circuit: readiness fails while the token endpoint would', async () => {
    const iso = s.withEnv({
      DATABASE_TIMEOUT_MS: '300',
      BREAKER_CONSECUTIVE_FAILURES: '3',
      BREAKER_MINIMUM_CALLS: '3',
      BREAKER_WINDOW_SIZE: '5',
      BREAKER_OPEN_MS: '5000',
      REDIS_KEY_PREFIX: `t:${randomSecret(6)}:`,
      ISOLATE: randomSecret(4),
    })
    await s.neon.setFaults({ refuse: true })
    for (let i = 0; i < 4; i++) {
      const token = await iso.fetch(
        TOKEN,
        jsonPost(
          { agent_id: DEMO_AGENT, agent_secret: agentSecret(s) },
          s.from(`192.0.2.${90 + i}`),
        ),
      )
      expect(token.status).toBe(503)
    }
    await s.neon.clearFaults()
    await s.neon.resetStats()
    const { res, body } = await healthOf(iso, '/health/ready')
    expect(res.status).toBe(503)
    expect(body.checks.database?.[0]?.status).toBe('fail')
    expect((await s.neon.stats()).requests).toBe(0) // answered from the open circuit
    const token = await iso.fetch(
      TOKEN,
      jsonPost({ agent_id: DEMO_AGENT, agent_secret: agentSecret(s) }),
    )
    expect(token.status).toBe(503)
  })
})

async function healthOf(iso: Scenario, path: string) {
  const res = await iso.fetch(path)
  return { res, body: (await res.json()) as HealthBody }
}
