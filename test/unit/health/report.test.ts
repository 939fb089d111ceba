// The authenticated health report, built with no store at all: its dependencies are named
// (ReportDeps), so the isolate's own parts serve and the checks report what is missing.
import { describe, expect, test } from 'vitest'
import { createAuthState } from '../../../src/auth/state.ts'
import { loadConfig } from '../../../src/config/index.ts'
import { healthReport as reportSchema } from '../../../src/contract/health.ts'
import { createHealthState, healthReport, type ReportDeps } from '../../../src/health/report.ts'
import { EventBus } from '../../../src/kernel/events.ts'
import { createLogger } from '../../../src/kernel/log.ts'
import { Trace } from '../../../src/kernel/trace.ts'
import { BreakerRegistry } from '../../../src/resilience/registry.ts'

const NOW = Date.parse('2026-11-26T09:00:00Z')

function deps(env: Record<string, string> = {}): ReportDeps & { events: EventBus } {
  const config = loadConfig({ APP_ENV: 'development', ...env })
  const events = new EventBus()
  const now = () => NOW
  const log = createLogger({ level: 'error', sink: () => {} })
  return {
    config,
    clock: { now },
    events,
    isolate: { id: 'abc123', startedAt: NOW - 60_000 },
    platform: 'node',
    breakers: new BreakerRegistry({
      tunables: config.tunables,
      now,
      random: () => 0.5,
      isolate: 'abc123',
      events,
    }),
    auth: createAuthState({ config, log, events }),
    health: createHealthState({ events, now }),
    progress: { buffer: undefined },
  }
}

const report = (d: ReportDeps, heartbeat = null) =>
  healthReport(d, { agentId: 'demo-agent', trace: new Trace(), scope: {}, heartbeat })

describe('the health report without a database or Redis', () => {
  test('is the contract’s shape, says what is missing, and fails the database check', async () => {
    const body = await report(deps())
    expect(reportSchema().safeParse(body).success).toBe(true)
    const checks = Object.fromEntries(body.health.checks.map((c) => [c.name, c]))
    expect(checks.database).toMatchObject({ status: 'fail', details: { configured: false } })
    expect(checks.redis).toMatchObject({ status: 'warn', details: { configured: false } })
    expect(checks.token_manager?.status).toBe('pass')
    expect(checks.configuration?.status).not.toBe('fail')
    expect(body.status).toBe('unhealthy')
    expect(body.health.overall).toBe('UNHEALTHY')
    expect(body.health.metrics).toMatchObject({
      isolate: { id: 'abc123', uptime_ms: 60_000, platform: 'node' },
      progress: { buffer: 'not buffered: no Redis, updates commit directly' },
      all_isolates: 'not aggregated: no Redis',
    })
    expect(body.performance.uptime).toBe(60_000)
    expect(body.last_seen).toBeNull()
  })

  test('counts what the events say: requests and errors per route', async () => {
    const d = deps()
    for (const status of [200, 200, 503]) {
      d.events.emit({
        type: 'http.request',
        method: 'GET',
        route: '/health',
        status,
        durationMs: 4,
      })
    }
    const body = await report(d)
    expect(body.performance.requestCounts).toEqual({ '/health': 3 })
  })

  test('a configuration that fails closed fails its check and raises an alert', async () => {
    const body = await report(deps({ APP_ENV: 'production' }))
    const configuration = body.health.checks.find((c) => c.name === 'configuration')
    expect(configuration?.status).toBe('fail')
    expect(body.health.alerts.some((a) => a.severity === 'critical')).toBe(true)
    // Never a secret, connection string or token in it.
    expect(JSON.stringify(body)).not.toMatch(/secret=|postgres:\/\/|eyJ/)
  })
})
