// Public health endpoints in draft-inadarei-api-health-check format.
// /health is liveness and calls no upstream; /health/ready checks the database and Redis.
import { Hono } from 'hono'
import type { PublicHealth } from '../contract/health.ts'
import {
  type CheckResult,
  configurationCheck,
  databaseCheck,
  redisCheck,
  worst,
} from '../health/checks.ts'
import type { AppEnv } from '../http/context.ts'

const HEALTH_JSON = 'application/health+json'

function body(version: string, checks: CheckResult[], now: number): PublicHealth {
  const time = new Date(now).toISOString()
  return {
    status: worst(checks.map((c) => c.status)),
    version,
    serviceId: 'agent-api',
    description: 'Agent API',
    // Only pass/warn/fail per dependency: internals belong in the authenticated report.
    checks: Object.fromEntries(
      checks.map((c) => [
        c.name,
        [{ status: c.status, time, observedUnit: 'ms', observedValue: c.durationMs }],
      ]),
    ),
  }
}

export const healthRoutes = new Hono<AppEnv>()
  .get('/health', (c) => {
    const services = c.get('services')
    const payload = body(
      services.config.version,
      [configurationCheck(services)],
      services.clock.now(),
    )
    return c.body(JSON.stringify(payload), 200, {
      'Content-Type': HEALTH_JSON,
      'Cache-Control': 'no-store',
    })
  })
  .get('/health/ready', async (c) => {
    const services = c.get('services')
    const checks = [
      configurationCheck(services),
      ...(await Promise.all([
        databaseCheck(services, c.get('trace')),
        redisCheck(services, c.get('trace')),
      ])),
    ]
    const payload = body(services.config.version, checks, services.clock.now())
    const failing = payload.status === 'fail'
    return c.body(JSON.stringify(payload), failing ? 503 : 200, {
      'Content-Type': HEALTH_JSON,
      'Cache-Control': 'no-store',
      ...(failing ? { 'Retry-After': '5' } : {}),
    })
  })
