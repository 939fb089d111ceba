// POST /api/v1/agent/health (the authenticated report) and the public health+json bodies.
import { boundedString, z } from './common.ts'

export const heartbeat = z.strictObject({
  status: z.optional(z.enum(['ok', 'degraded', 'error'])),
  version: z.optional(boundedString(1, 64)),
  details: z.optional(z.record(z.string(), z.unknown())),
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
}

export interface PublicHealth {
  status: 'pass' | 'warn' | 'fail'
  version: string
  checks?: Record<string, { status: 'pass' | 'warn' | 'fail' }[]>
}
