// POST /api/v1/agent/health (the authenticated report) and the public health+json bodies.
import * as z from 'zod/mini'
import { boundedString } from './common.ts'
import { storableJsonObject } from './storable.ts'

/** A heartbeat's free-form details, as JSON. */
export const MAX_HEARTBEAT_DETAILS_BYTES = 4 * 1024

export const heartbeat = z.strictObject({
  status: z.optional(z.enum(['ok', 'degraded', 'error'])),
  version: z.optional(boundedString(1, 64)),
  details: z.optional(storableJsonObject(MAX_HEARTBEAT_DETAILS_BYTES)),
})

export type Heartbeat = z.input<typeof heartbeat>

export type CheckName =
  | 'database'
  | 'redis'
  | 'circuit_breakers'
  | 'token_manager'
  | 'configuration'

export interface HealthReport {
  status: 'healthy' | 'degraded' | 'unhealthy'
  agent_id: string
  environment: 'development' | 'staging' | 'production'
  health: {
    overall: 'HEALTHY' | 'DEGRADED' | 'UNHEALTHY'
    checks: {
      name: CheckName
      status: 'pass' | 'warn' | 'fail'
      duration_ms: number
      details: Record<string, unknown>
    }[]
    metrics: Record<string, unknown>
    alerts: { id: string; severity: 'warning' | 'critical'; message: string; since: string }[]
    recommendations: string[]
  }
  performance: {
    responseTime: number
    uptime: number
    requestCounts: Record<string, number>
    errorRate: number
  }
  /** When this agent last sent a heartbeat (the body of this route), or null. */
  last_seen: string | null
  /** That heartbeat, as sent, with its time. */
  heartbeat: StoredHeartbeat | null
}

export interface StoredHeartbeat {
  status?: 'ok' | 'degraded' | 'error'
  version?: string
  details?: Record<string, unknown>
  last_seen: string
}

/** draft-inadarei-api-health-check, as /health and /health/ready answer it. */
export interface PublicHealth {
  status: 'pass' | 'warn' | 'fail'
  version: string
  serviceId: string
  description: string
  checks?: Record<
    string,
    { status: 'pass' | 'warn' | 'fail'; time: string; observedUnit: 'ms'; observedValue: number }[]
  >
}
