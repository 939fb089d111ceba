// POST /api/v1/agent/health (the heartbeat and the authenticated report) and the public
// health+json bodies of /health and /health/ready.
import * as z from 'zod/mini'
import {
  boundedString,
  count,
  ENVIRONMENTS,
  identifier,
  instant,
  jsonObject,
  onFirstUse,
} from './common.ts'
import { storableJsonObject } from './storable.ts'

/** A heartbeat's free-form details, as JSON. */
export const MAX_HEARTBEAT_DETAILS_BYTES = 4 * 1024

export const heartbeat = z
  .strictObject({
    status: z.optional(z.enum(['ok', 'degraded', 'error'])),
    version: z.optional(boundedString(1, 64)),
    details: z.optional(storableJsonObject(MAX_HEARTBEAT_DETAILS_BYTES)),
  })
  .register(z.globalRegistry, {
    id: 'Heartbeat',
    description: 'The agent’s own health, stored as its heartbeat.',
  })

export type Heartbeat = z.input<typeof heartbeat>

export const CHECK_NAMES = [
  'database',
  'redis',
  'circuit_breakers',
  'token_manager',
  'configuration',
] as const

const checkStatus = z.enum(['pass', 'warn', 'fail'])

/** draft-inadarei-api-health-check, as /health and /health/ready answer it. */
export const publicHealth = onFirstUse(() =>
  z
    .strictObject({
      status: checkStatus,
      version: z.string(),
      serviceId: z.string(),
      description: z.string(),
      checks: z.optional(
        z.record(
          z.string(),
          z.array(
            z.strictObject({
              status: checkStatus,
              time: instant(),
              observedUnit: z.literal('ms'),
              observedValue: z.number(),
            }),
          ),
        ),
      ),
    })
    .register(z.globalRegistry, {
      id: 'PublicHealth',
      description: 'draft-inadarei-api-health-check: pass/warn/fail per dependency, nothing more.',
    }),
)
export type PublicHealth = z.output<ReturnType<typeof publicHealth>>

export const storedHeartbeat = onFirstUse(() =>
  z
    .strictObject({ ...heartbeat.shape, last_seen: instant() })
    .register(z.globalRegistry, { id: 'StoredHeartbeat' }),
)
/** A heartbeat as sent, with its time. */
export type StoredHeartbeat = z.output<ReturnType<typeof storedHeartbeat>>

export const healthReport = onFirstUse(() =>
  z
    .strictObject({
      status: z.enum(['healthy', 'degraded', 'unhealthy']),
      agent_id: identifier,
      environment: z.enum(ENVIRONMENTS),
      last_seen: z
        .nullable(instant())
        .check(z.describe('When this agent last sent a heartbeat (within 15 minutes), else null.')),
      heartbeat: z.nullable(storedHeartbeat()).check(z.describe('That heartbeat, else null.')),
      health: z.strictObject({
        overall: z.enum(['HEALTHY', 'DEGRADED', 'UNHEALTHY']),
        checks: z.array(
          z.strictObject({
            name: z.enum(CHECK_NAMES),
            status: checkStatus,
            duration_ms: count(),
            details: jsonObject(),
          }),
        ),
        metrics: jsonObject(),
        alerts: z.array(
          z.strictObject({
            id: z.string(),
            severity: z.enum(['warning', 'critical']),
            message: z.string(),
            since: instant(),
          }),
        ),
        recommendations: z.array(z.string()),
      }),
      performance: z.strictObject({
        responseTime: z.number().check(z.minimum(0)),
        uptime: z.number().check(z.minimum(0)),
        requestCounts: z.record(z.string(), count()),
        errorRate: z.number().check(z.minimum(0), z.maximum(100)),
      }),
    })
    .register(z.globalRegistry, {
      id: 'HealthReport',
      description: 'The authenticated health report. No secret, URL or token.',
    }),
)
export type HealthReport = z.output<ReturnType<typeof healthReport>>
