// GET /health (liveness) and GET /health/ready (readiness), in both runtimes.
import { afterEach, describe, expect, test } from 'vitest'
import { scenario } from '../support/scenario.ts'

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
