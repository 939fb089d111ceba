// Every number an operator may tune, with its variable, per-environment default and bounds.
// This table is the single source for parsing, validation and the README's configuration
// table (a test keeps the two in step).
import * as z from 'zod/mini'
import '../contract/common.ts'
import { LOG_LEVELS, type LogLevel } from '../kernel/log.ts'
import type { EnvSource } from './env-source.ts'
import type { Environment } from './environment.ts'
import type { ConfigFinding } from './secrets.ts'

type PerEnvironment<T> = T | Readonly<Record<Environment, T>>

interface NumericTunable {
  readonly variable: string
  readonly description: string
  readonly default: PerEnvironment<number>
  readonly min: number
  readonly max: number
}

const SECOND = 1000
const MINUTE = 60 * SECOND
const HOUR = 60 * MINUTE
const DAY_S = 24 * 60 * 60

export const NUMERIC_TUNABLES = {
  accessTokenTtlSeconds: {
    variable: 'ACCESS_TOKEN_TTL_SECONDS',
    description: 'Access token lifetime',
    default: { development: 8 * 3600, staging: 3600, production: 900 },
    min: 60,
    max: DAY_S,
  },
  delegatedTokenTtlSeconds: {
    variable: 'DELEGATED_TOKEN_TTL_SECONDS',
    description:
      'Longest lifetime of a token got by token exchange (RFC 8693); never beyond the token exchanged',
    default: 300,
    min: 30,
    max: DAY_S,
  },
  clientAssertionMaxLifetimeSeconds: {
    variable: 'CLIENT_ASSERTION_MAX_LIFETIME_SECONDS',
    description:
      'Furthest a private_key_jwt client assertion’s exp may lie ahead (RFC 7523); its jti is remembered until then',
    default: 300,
    min: 10,
    max: 3600,
  },
  dpopProofMaxAgeSeconds: {
    variable: 'DPOP_PROOF_MAX_AGE_SECONDS',
    description:
      'How old (by its iat) a DPoP proof may be (RFC 9449 §11.1); its jti is remembered that long',
    default: 60,
    min: 5,
    max: 600,
  },
  dpopNonceTtlSeconds: {
    variable: 'DPOP_NONCE_TTL_SECONDS',
    description:
      'When set, DPoP proofs must carry a server nonce (RFC 9449 §8–9, DPoP-Nonce), each valid for two such windows; 0: no nonce',
    default: 0,
    min: 0,
    max: 3600,
  },
  replayCacheMaxEntries: {
    variable: 'REPLAY_CACHE_MAX_ENTRIES',
    description:
      'One-time proof ids (client assertions, DPoP proofs) an isolate remembers when Redis is absent or failing; full: 503',
    default: 100_000,
    min: 100,
    max: 10_000_000,
  },
  refreshTokenTtlSeconds: {
    variable: 'REFRESH_TOKEN_TTL_SECONDS',
    description: 'Refresh token lifetime',
    default: { development: 30 * DAY_S, staging: 7 * DAY_S, production: DAY_S },
    min: 300,
    max: 90 * DAY_S,
  },
  refreshReuseGraceSeconds: {
    variable: 'REFRESH_REUSE_GRACE_SECONDS',
    description:
      'How long after a refresh token is first used it may be presented again (its answer was lost) while its successor is unused; 0: never',
    default: 60,
    min: 0,
    max: 600,
  },
  tokenClockToleranceSeconds: {
    variable: 'TOKEN_CLOCK_TOLERANCE_SECONDS',
    description: 'Clock skew accepted on exp/nbf/iat',
    default: 30,
    min: 0,
    max: 300,
  },
  tokenCacheMaxEntries: {
    variable: 'TOKEN_CACHE_MAX_ENTRIES',
    description: 'Verified access tokens kept per isolate',
    default: 10_000,
    min: 0,
    max: 1_000_000,
  },
  dpopKeyCacheMaxBytes: {
    variable: 'DPOP_KEY_CACHE_MAX_BYTES',
    description:
      'Bytes of imported DPoP proof keys kept per isolate (each charged its key material and 1 KiB); 0: none kept',
    default: 1024 * 1024,
    min: 0,
    max: 64 * 1024 * 1024,
  },
  revocationCheckTtlMs: {
    variable: 'REVOCATION_CHECK_TTL_MS',
    description: 'How long an isolate trusts a "not revoked" answer from Redis',
    default: 2 * SECOND,
    min: 0,
    max: MINUTE,
  },
  grantCacheTtlMs: {
    variable: 'GRANT_CACHE_TTL_MS',
    description: 'How long an isolate trusts an agent-user grant it looked up',
    default: 30 * SECOND,
    min: 0,
    max: HOUR,
  },
  grantCacheMaxEntries: {
    variable: 'GRANT_CACHE_MAX_ENTRIES',
    description: 'Agent-user grants kept per isolate',
    default: 10_000,
    min: 1,
    max: 1_000_000,
  },
  progressBatchSize: {
    variable: 'PROGRESS_BATCH_SIZE',
    description: 'Buffered updates of one (user, task) that trigger a flush',
    default: 10,
    min: 1,
    max: 1000,
  },
  progressBatchDelayMs: {
    variable: 'PROGRESS_BATCH_DELAY_MS',
    description: 'Age of the oldest buffered update that triggers a flush',
    default: 5 * SECOND,
    min: 100,
    max: 10 * MINUTE,
  },
  progressBufferMaxDepth: {
    variable: 'PROGRESS_BUFFER_MAX_DEPTH',
    description: 'Buffered updates beyond which progress writes answer 503',
    default: 100_000,
    min: 100,
    max: 10_000_000,
  },
  progressClaimTimeoutMs: {
    variable: 'PROGRESS_CLAIM_TIMEOUT_MS',
    description: 'Visibility timeout of a flush claim before its items are re-delivered',
    default: 30 * SECOND,
    min: SECOND,
    max: 10 * MINUTE,
  },
  progressDedupeTtlMs: {
    variable: 'PROGRESS_DEDUPE_TTL_MS',
    description:
      'How long an idempotency key is remembered (both stores): a reuse with other content within it is a 422, after it a new update',
    default: DAY_S * SECOND,
    min: MINUTE,
    max: 30 * DAY_S * SECOND,
  },
  contextInvalidationPollMs: {
    variable: 'CONTEXT_INVALIDATION_POLL_MS',
    description: 'How often an isolate looks for context invalidations made by others',
    default: 2 * SECOND,
    min: 100,
    max: MINUTE,
  },
  contextCacheTtlMs: {
    variable: 'CONTEXT_CACHE_TTL_MS',
    description: 'User context served fresh from the isolate cache',
    default: 5 * MINUTE,
    min: 0,
    max: DAY_S * SECOND,
  },
  contextCacheStaleMs: {
    variable: 'CONTEXT_CACHE_STALE_MS',
    description: 'How long past its TTL a cached context may still be served stale',
    default: HOUR,
    min: 0,
    max: 7 * DAY_S * SECOND,
  },
  contextCacheNegativeTtlMs: {
    variable: 'CONTEXT_CACHE_NEGATIVE_TTL_MS',
    description: 'How long "user not found" is cached',
    default: 30 * SECOND,
    min: 0,
    max: HOUR,
  },
  contextCacheMaxEntries: {
    variable: 'CONTEXT_CACHE_MAX_ENTRIES',
    description: 'User contexts kept per isolate',
    default: 1000,
    min: 1,
    max: 1_000_000,
  },
  contextCacheMaxBytes: {
    variable: 'CONTEXT_CACHE_MAX_BYTES',
    description: 'Bytes of user context kept per isolate',
    default: 8 * 1024 * 1024,
    min: 1024,
    max: 512 * 1024 * 1024,
  },
  breakerConsecutiveFailures: {
    variable: 'BREAKER_CONSECUTIVE_FAILURES',
    description: 'Consecutive failures that open a circuit',
    default: 5,
    min: 1,
    max: 1000,
  },
  breakerFailureRatePercent: {
    variable: 'BREAKER_FAILURE_RATE_PERCENT',
    description: 'Failure rate over the window that opens a circuit',
    default: 50,
    min: 1,
    max: 100,
  },
  breakerSlowCallRatePercent: {
    variable: 'BREAKER_SLOW_CALL_RATE_PERCENT',
    description: 'Slow-call rate over the window that opens a circuit',
    default: 80,
    min: 1,
    max: 100,
  },
  breakerSlowCallMs: {
    variable: 'BREAKER_SLOW_CALL_MS',
    description: 'A call slower than this counts as slow',
    default: 2 * SECOND,
    min: 1,
    max: MINUTE,
  },
  breakerWindowSize: {
    variable: 'BREAKER_WINDOW_SIZE',
    description: 'Calls in the sliding window the rates are computed over',
    default: 20,
    min: 1,
    max: 1000,
  },
  breakerMinimumCalls: {
    variable: 'BREAKER_MINIMUM_CALLS',
    description: 'Calls in the window before any rule can open the circuit',
    default: 5,
    min: 1,
    max: 1000,
  },
  breakerOpenMs: {
    variable: 'BREAKER_OPEN_MS',
    description: 'First open period; later trips back off exponentially',
    default: 10 * SECOND,
    min: 100,
    max: HOUR,
  },
  breakerOpenMaxMs: {
    variable: 'BREAKER_OPEN_MAX_MS',
    description: 'Longest open period',
    default: 2 * MINUTE,
    min: 100,
    max: HOUR,
  },
  breakerHalfOpenProbes: {
    variable: 'BREAKER_HALF_OPEN_PROBES',
    description: 'Trial calls allowed while half-open',
    default: 1,
    min: 1,
    max: 100,
  },
  breakerSnapshotTtlMs: {
    variable: 'BREAKER_SNAPSHOT_TTL_MS',
    description: 'How long an isolate trusts a breaker snapshot read from Redis',
    default: 2 * SECOND,
    min: 0,
    max: MINUTE,
  },
  databaseTimeoutMs: {
    variable: 'DATABASE_TIMEOUT_MS',
    description: 'Timeout of one Neon HTTP request',
    default: 3 * SECOND,
    min: 50,
    max: MINUTE,
  },
  redisTimeoutMs: {
    variable: 'REDIS_TIMEOUT_MS',
    description: 'Timeout of one Upstash REST request',
    default: SECOND,
    min: 50,
    max: MINUTE,
  },
  healthCheckTimeoutMs: {
    variable: 'HEALTH_CHECK_TIMEOUT_MS',
    description: 'Timeout of each readiness check',
    default: SECOND,
    min: 50,
    max: 30 * SECOND,
  },
  rateLimitTokenFailuresPerAgent: {
    variable: 'RATE_LIMIT_TOKEN_FAILURES_PER_AGENT',
    description: 'Failed token requests per (agent id, client address) per window',
    default: 10,
    min: 1,
    max: 100_000,
  },
  rateLimitTokenFailuresPerAddress: {
    variable: 'RATE_LIMIT_TOKEN_FAILURES_PER_ADDRESS',
    description: 'Failed token requests per client address per window',
    default: 100,
    min: 1,
    max: 1_000_000,
  },
  rateLimitTokenWindowSeconds: {
    variable: 'RATE_LIMIT_TOKEN_WINDOW_SECONDS',
    description: 'Window of the failed-token-request limits',
    default: 300,
    min: 1,
    max: DAY_S,
  },
  rateLimitRequestsPerAgent: {
    variable: 'RATE_LIMIT_REQUESTS_PER_AGENT',
    description: 'Authenticated requests per agent per window',
    default: 600,
    min: 1,
    max: 10_000_000,
  },
  rateLimitMaxIdentifiers: {
    variable: 'RATE_LIMIT_MAX_IDENTIFIERS',
    description: 'Clients tracked per isolate by the fallback limiter and leases',
    default: 10_000,
    min: 100,
    max: 1_000_000,
  },
  rateLimitRequestsWindowSeconds: {
    variable: 'RATE_LIMIT_REQUESTS_WINDOW_SECONDS',
    description: 'Window of the authenticated-request limit',
    default: 60,
    min: 1,
    max: DAY_S,
  },
  revocationMaxPerAgent: {
    variable: 'REVOCATION_MAX_PER_AGENT',
    description:
      "Revocations one agent may hold in an isolate's own list; past it, all its tokens issued so far are revoked there",
    default: 1000,
    min: 1,
    max: 1_000_000,
  },
  revocationMaxAgents: {
    variable: 'REVOCATION_MAX_AGENTS',
    description:
      'Agents whose revocations an isolate holds itself; past it, a revocation no durable store took is refused with 503',
    default: 10_000,
    min: 1,
    max: 1_000_000,
  },
  progressDirectCheckTtlMs: {
    variable: 'PROGRESS_DIRECT_CHECK_TTL_MS',
    description:
      'How long an isolate trusts its answer to "are keys committed without Redis not yet in Redis?" (0: ask on every buffered request)',
    default: 5 * SECOND,
    min: 0,
    max: MINUTE,
  },
  progressBufferAgentSharePercent: {
    variable: 'PROGRESS_BUFFER_AGENT_SHARE_PERCENT',
    description:
      'The share (%) of PROGRESS_BUFFER_MAX_DEPTH one agent may fill; past it (or a full buffer) its updates are committed straight to Postgres, and refused with 503 only if Postgres cannot take them',
    default: 25,
    min: 1,
    max: 100,
  },
} as const satisfies Record<string, NumericTunable>

export type NumericTunableName = keyof typeof NUMERIC_TUNABLES
export type Tunables = { readonly [K in NumericTunableName]: number } & {
  readonly logLevel: LogLevel
  readonly contextFallbackMock: boolean
}

export { LOG_LEVELS, type LogLevel }

/** The non-numeric tunables, for documentation. */
export const OTHER_TUNABLES = [
  { variable: 'LOG_LEVEL', description: 'debug, info, warn or error', default: 'info' },
  {
    variable: 'CONTEXT_FALLBACK_MOCK',
    description: 'Answer context reads with mock data when the database is down (development only)',
    default: 'false',
  },
] as const

export function defaultFor(tunable: NumericTunable, environment: Environment): number {
  return typeof tunable.default === 'number' ? tunable.default : tunable.default[environment]
}

const booleanVar = z.enum(['true', 'false', '1', '0'])
const logLevelVar = z.enum(LOG_LEVELS)

export function parseTunables(
  env: EnvSource,
  environment: Environment,
): { tunables: Tunables; findings: ConfigFinding[] } {
  const findings: ConfigFinding[] = []
  const numbers = {} as Record<NumericTunableName, number>
  for (const [name, tunable] of Object.entries(NUMERIC_TUNABLES) as [
    NumericTunableName,
    NumericTunable,
  ][]) {
    const raw = env[tunable.variable]?.trim()
    const fallback = defaultFor(tunable, environment)
    if (!raw) {
      numbers[name] = fallback
      continue
    }
    const schema = z.coerce.number().check(z.int(), z.minimum(tunable.min), z.maximum(tunable.max))
    // Decimal digits only: Number() would also read 0x10, 1e3 and 0b1, which no one means.
    const parsed = /^\d+$/.test(raw) ? schema.safeParse(raw) : { success: false as const }
    if (parsed.success) {
      numbers[name] = parsed.data
    } else {
      numbers[name] = fallback
      findings.push({
        variable: tunable.variable,
        severity: 'fatal',
        message: `${tunable.variable} must be an integer from ${tunable.min} to ${tunable.max}`,
      })
    }
  }

  const logLevel = logLevelVar.safeParse(env.LOG_LEVEL?.trim().toLowerCase() || 'info')
  if (!logLevel.success) {
    findings.push({
      variable: 'LOG_LEVEL',
      severity: 'warning',
      message: `LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}; using info`,
    })
  }

  const mockRaw = booleanVar.safeParse(env.CONTEXT_FALLBACK_MOCK?.trim().toLowerCase() || 'false')
  const contextFallbackMock = mockRaw.success && (mockRaw.data === 'true' || mockRaw.data === '1')
  if (!mockRaw.success) {
    findings.push({
      variable: 'CONTEXT_FALLBACK_MOCK',
      severity: 'fatal',
      message: 'CONTEXT_FALLBACK_MOCK must be true or false',
    })
  }
  if (contextFallbackMock && environment !== 'development') {
    findings.push({
      variable: 'CONTEXT_FALLBACK_MOCK',
      severity: 'fatal',
      message: `mock data is for development only; unset CONTEXT_FALLBACK_MOCK in ${environment}`,
    })
  }

  crossCheck(numbers, findings, environment)
  return {
    tunables: {
      ...numbers,
      logLevel: logLevel.success ? logLevel.data : 'info',
      contextFallbackMock: contextFallbackMock && environment === 'development',
    },
    findings,
  }
}

/**
 * Rules between tunables. A broken rule is a fatal finding, and the tunables it names go back
 * to their defaults, as a value out of range does: the services are still built (a breaker
 * refuses an impossible configuration by throwing), so every route can answer its 503
 * `configuration_error` instead of failing itself.
 */
function crossCheck(
  n: Record<NumericTunableName, number>,
  findings: ConfigFinding[],
  environment: Environment,
): void {
  const rule = (ok: boolean, names: NumericTunableName[], message: string) => {
    if (ok) return
    findings.push({ variable: NUMERIC_TUNABLES[names[0]!].variable, severity: 'fatal', message })
    for (const name of names) n[name] = defaultFor(NUMERIC_TUNABLES[name], environment)
  }
  rule(
    n.breakerOpenMaxMs >= n.breakerOpenMs,
    ['breakerOpenMaxMs', 'breakerOpenMs'],
    'BREAKER_OPEN_MAX_MS must not be below BREAKER_OPEN_MS',
  )
  rule(
    n.breakerMinimumCalls <= n.breakerWindowSize,
    ['breakerMinimumCalls', 'breakerWindowSize'],
    'BREAKER_MINIMUM_CALLS must not exceed BREAKER_WINDOW_SIZE',
  )
  rule(
    n.refreshTokenTtlSeconds >= n.accessTokenTtlSeconds,
    ['refreshTokenTtlSeconds', 'accessTokenTtlSeconds'],
    'REFRESH_TOKEN_TTL_SECONDS must not be below ACCESS_TOKEN_TTL_SECONDS',
  )
  rule(
    n.progressClaimTimeoutMs > n.databaseTimeoutMs,
    ['progressClaimTimeoutMs', 'databaseTimeoutMs'],
    'PROGRESS_CLAIM_TIMEOUT_MS must exceed DATABASE_TIMEOUT_MS, or a slow flush is re-delivered while it runs',
  )
}
