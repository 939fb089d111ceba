// Response bodies as zod schemas: documentation of what the API answers, converted to JSON
// Schema for the OpenAPI document. The routes build their bodies from the TypeScript interfaces
// in src/contract; test/unit/openapi/document.test.ts asserts (at compile time) that each schema
// here and its interface describe the same shape, and the contract check validates every
// response the scenario tests receive against them. Strict objects: an unexpected member in a
// response (a leaked internal, a renamed field) is a contract failure, not a silent addition.

import * as z from 'zod/mini'
import { ENVIRONMENTS } from '../config/environment.ts'
import { identifier } from '../contract/common.ts'
import { heartbeat } from '../contract/health.ts'
import { PROGRESS_STATUSES } from '../contract/progress.ts'
import { scopeString } from '../contract/token.ts'

const count = () => z.number().check(z.int(), z.minimum(0))
const instant = () => z.iso.datetime()
const environment = z.enum(ENVIRONMENTS)
const json = () => z.record(z.string(), z.unknown())

export const CONTEXT_SOURCES = ['database', 'cache', 'stale-cache', 'basic', 'mock'] as const
export const CHECK_NAMES = [
  'database',
  'redis',
  'circuit_breakers',
  'token_manager',
  'configuration',
] as const
export const CACHE_STATUSES = ['HIT', 'MISS', 'STALE', 'BYPASS'] as const

// --- tokens --------------------------------------------------------------------------------

export const tokenResponse = z.strictObject({
  access_token: z.string(),
  token_type: z.literal('Bearer'),
  expires_in: count(),
  expires_at: instant(),
  refresh_token: z.string(),
  refresh_expires_in: count(),
  scope: scopeString,
  environment,
})

/** RFC 7009 §2.2: the body of a successful revocation carries nothing. */
export const revokeResponse = z.strictObject({})

// --- user context ----------------------------------------------------------------------------

export const taskProgress = z.strictObject({
  task_id: identifier,
  status: z.enum(PROGRESS_STATUSES),
  progress: z.number().check(z.int(), z.minimum(0), z.maximum(100)),
  updated_at: instant(),
})

export const userContextResponse = z.strictObject({
  user: z.strictObject({
    id: identifier,
    display_name: z.optional(z.string()),
    timezone: z.optional(z.string()),
    locale: z.optional(z.string()),
  }),
  context: json(),
  progress: z.array(taskProgress),
  source: z.enum(CONTEXT_SOURCES),
  cached_at: z.nullable(instant()),
  degraded: z.boolean(),
})

// --- progress ------------------------------------------------------------------------------

const batchState = z.enum(['queued', 'committed'])

export const progressAccepted = z.strictObject({
  batch_id: z.uuid(),
  accepted: count(),
  duplicates: count(),
  status: batchState,
})

export const batchStatus = z.strictObject({
  batch_id: z.uuid(),
  status: batchState,
  accepted: count(),
  committed_at: z.nullable(instant()),
  dead_letters: z.optional(count()),
  discarded: z.optional(count()),
})

export const flushReport = z.strictObject({
  flushed: count(),
  /** Updates still buffered, or null when the buffer could not be counted. */
  remaining: z.nullable(count()),
  /** Dead letters held, or null when they could not be counted. */
  dead_letters: z.nullable(count()),
  skipped: z.optional(z.enum(['no_buffer', 'no_database', 'lease_held', 'circuit_open'])),
})

// --- health --------------------------------------------------------------------------------

const checkStatus = z.enum(['pass', 'warn', 'fail'])

/** draft-inadarei-api-health-check, as /health and /health/ready answer it. */
export const publicHealth = z.strictObject({
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

export const storedHeartbeat = z.strictObject({ ...heartbeat.shape, last_seen: instant() })

export const healthReport = z.strictObject({
  status: z.enum(['healthy', 'degraded', 'unhealthy']),
  agent_id: identifier,
  environment,
  last_seen: z.nullable(instant()),
  heartbeat: z.nullable(storedHeartbeat),
  health: z.strictObject({
    overall: z.enum(['HEALTHY', 'DEGRADED', 'UNHEALTHY']),
    checks: z.array(
      z.strictObject({
        name: z.enum(CHECK_NAMES),
        status: checkStatus,
        duration_ms: count(),
        details: json(),
      }),
    ),
    metrics: json(),
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

// --- problems ------------------------------------------------------------------------------

export const fieldError = z.strictObject({ path: z.string(), message: z.string() })

/** RFC 9457 problem details with the contract's members and OAuth's on the token routes. */
export const problem = z.strictObject({
  type: z.string(),
  title: z.string(),
  status: z.number().check(z.int(), z.minimum(400), z.maximum(599)),
  detail: z.optional(z.string()),
  code: z.string(),
  request_id: z.string(),
  errors: z.optional(z.array(fieldError)),
  error: z.optional(z.string()),
  error_description: z.optional(z.string()),
})
