// Public health endpoints in draft-inadarei-api-health-check format.
// /health is liveness and calls no upstream; /health/ready checks the database and Redis.
import { Hono } from 'hono'
import { type PublicHealth, publicHealth } from '../contract/health.ts'
import {
  type CheckResult,
  configurationCheck,
  databaseCheck,
  redisCheck,
  tokenManagerCheck,
  worst,
} from '../health/checks.ts'
import type { AppEnv } from '../http/context.ts'
import type { Operation } from '../http/operation.ts'

const HEALTH_JSON = 'application/health+json'

const health = { [HEALTH_JSON]: { schema: publicHealth } }

export const getLiveness = {
  method: 'get',
  path: '/health',
  operationId: 'getLiveness',
  summary: 'Liveness',
  description: 'Calls no upstream. `status` is the worst of the checks run.',
  tag: 'health',
  responses: { '200': { description: 'Alive', content: health } },
} as const satisfies Operation

export const getReadiness = {
  method: 'get',
  path: '/health/ready',
  operationId: 'getReadiness',
  summary: 'Readiness',
  description:
    'Checks the configuration, the signing keys, the database and Redis (with short timeouts). `503` whenever the token endpoint would answer `503`: the configuration fails closed, no database is configured or it does not answer, or its circuit is open. A probe’s own short deadline never counts against the shared database circuit.',
  tag: 'health',
  responses: {
    '200': { description: 'Ready (`pass` or `warn`)', content: health },
    '503': { description: 'Not ready (`fail`)', headers: ['Retry-After'], content: health },
  },
} as const satisfies Operation

export const healthOperations: readonly Operation[] = [getLiveness, getReadiness]

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
  .get(getLiveness.path, (c) => {
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
  .get(getReadiness.path, async (c) => {
    const services = c.get('services')
    const checks = [
      configurationCheck(services),
      ...(await Promise.all([
        databaseCheck(services, c.get('trace')),
        redisCheck(services, c.get('trace')),
        // Keys that cannot be imported close the token endpoint: not ready either.
        tokenManagerCheck(services),
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
