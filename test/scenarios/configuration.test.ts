// Operator mistakes fail closed, in both runtimes: a JWT secret equal to the agent secret, a
// CRON_SECRET production refuses. And the flush route's own authentication.
import { describe, expect, test } from 'vitest'
import { DEMO_AGENT, jsonPost } from '../support/agents.ts'
import { randomSecret, scenario } from '../support/scenario.ts'

const s = await scenario()
const FLUSH = '/api/v1/internal/flush'

function production(extra: Record<string, string | undefined>) {
  return s.withEnv({
    APP_ENV: 'production',
    PROD_AGENT_SECRET: randomSecret(),
    PROD_JWT_SECRET: randomSecret(),
    PUBLIC_URL: 'https://agent-api.test',
    ISOLATE: randomSecret(4),
    ...extra,
  })
}

describe(`configuration fails closed (${s.runtime})`, () => {
  test('production with the JWT secret equal to the agent secret: 503 everywhere tokens matter', async () => {
    const same = randomSecret()
    for (const prod of [
      production({ PROD_AGENT_SECRET: same, PROD_JWT_SECRET: same }),
      production({ PROD_AGENT_SECRET: same, PROD_JWT_SECRET_PREVIOUS: same }),
    ]) {
      const token = await prod.fetch(
        '/api/v1/agent/token',
        jsonPost({ agent_id: DEMO_AGENT, agent_secret: same }),
      )
      expect(token.status).toBe(503)
      expect((await token.json()).code).toBe('configuration_error')
      expect((await prod.fetch('/health/ready')).status).toBe(503)
    }
  })

  test('tunables that break a rule between them: 503 configuration_error, liveness still 200, never a 500', async () => {
    for (const extra of [
      { BREAKER_OPEN_MS: '60000', BREAKER_OPEN_MAX_MS: '1000' },
      { BREAKER_MINIMUM_CALLS: '100', BREAKER_WINDOW_SIZE: '10' },
    ]) {
      const prod = production(extra)
      const token = await prod.fetch(
        '/api/v1/agent/token',
        jsonPost({ agent_id: DEMO_AGENT, agent_secret: randomSecret() }),
      )
      expect(token.status).toBe(503)
      expect((await token.json()).code).toBe('configuration_error')
      expect((await prod.fetch('/health')).status).toBe(200)
      expect((await prod.fetch('/health/ready')).status).toBe(503)
    }
  })

  test('production with a CRON_SECRET it refuses: the flush route is closed, not merely reported', async () => {
    const prod = production({ CRON_SECRET: 'tiny' })
    for (const auth of ['Bearer tiny', 'bearer tiny', 'Bearer wrong']) {
      const res = await prod.fetch(FLUSH, { method: 'POST', headers: { Authorization: auth } })
      expect(res.status).toBe(503)
      expect(res.headers.get('retry-after')).toMatch(/^\d+$/)
      expect((await res.json()).code).toBe('configuration_error')
    }
  })
})

describe(`the flush route's authentication (${s.runtime})`, () => {
  test('the bearer scheme name in any case; a wrong secret is 401', async () => {
    const cron = s.env.CRON_SECRET!
    for (const scheme of ['Bearer', 'bearer', 'BEARER']) {
      for (const method of ['POST', 'GET']) {
        const res = await s.fetch(FLUSH, {
          method,
          headers: { Authorization: `${scheme} ${cron}` },
        })
        expect(res.status, `${method} ${scheme}`).toBe(200)
      }
    }
    const wrong = await s.fetch(FLUSH, {
      method: 'POST',
      headers: { Authorization: `Bearer ${cron}x`, ...s.from('192.0.2.200') },
    })
    expect(wrong.status).toBe(401)
    const none = await s.fetch(FLUSH, { method: 'POST', headers: s.from('192.0.2.201') })
    expect(none.status).toBe(401)
  })
})
