// Health checks: each answers pass, warn or fail with how long it took. `/health` (liveness)
// runs only the ones that need no upstream; `/health/ready` runs them all with short timeouts.

import { SigningKeyError } from '../auth/keys.ts'
import type { AuthState } from '../auth/state.ts'
import type { Config } from '../config/index.ts'
import type { Database } from '../db/client.ts'
import { sql } from '../db/client.ts'
import type { Trace } from '../kernel/trace.ts'
import type { RedisStore } from '../redis.ts'
import type { BreakerReport } from '../resilience/policy.ts'
import { CircuitOpenError } from '../resilience/policy.ts'
import { withTimeout } from '../resilience/timeout.ts'

export type CheckStatus = 'pass' | 'warn' | 'fail'

export interface CheckResult {
  name: string
  status: CheckStatus
  durationMs: number
  /** Operator-facing facts; never a secret, URL or raw upstream error. */
  details: Record<string, unknown>
}

/** What the checks look at, named one by one (the isolate's services have these members). */
export interface CheckDeps {
  config: Config
  /** Absent when no database is configured. */
  db?: Database
  /** Absent when Upstash is not configured. */
  redis?: RedisStore
  breakers: { list(): BreakerReport[] }
  auth: Pick<AuthState, 'keys' | 'verified' | 'revocations'>
}

const RANK: Record<CheckStatus, number> = { pass: 0, warn: 1, fail: 2 }

export function worst(statuses: Iterable<CheckStatus>): CheckStatus {
  let result: CheckStatus = 'pass'
  for (const status of statuses) if (RANK[status] > RANK[result]) result = status
  return result
}

async function timed(
  name: string,
  run: () => Promise<Omit<CheckResult, 'name' | 'durationMs'>>,
): Promise<CheckResult> {
  const start = performance.now()
  const result = await run()
  return { name, durationMs: Math.round(performance.now() - start), ...result }
}

export function configurationCheck(services: Pick<CheckDeps, 'config'>): CheckResult {
  const { config } = services
  const fatal = config.findings.filter((f) => f.severity === 'fatal')
  const warnings = config.findings.filter((f) => f.severity === 'warning')
  return {
    name: 'configuration',
    status: fatal.length ? 'fail' : warnings.length ? 'warn' : 'pass',
    durationMs: 0,
    details: {
      environment: config.environment,
      // Messages name variables, never values.
      problems: fatal.map((f) => f.message),
      warnings: warnings.map((f) => f.message),
    },
  }
}

export function databaseCheck(
  services: Pick<CheckDeps, 'db' | 'config'>,
  trace?: Trace,
): Promise<CheckResult> {
  return timed('database', async () => {
    const { db, config } = services
    // No database, no tokens (the token endpoint answers 503): not ready, in any environment.
    if (!db) return { status: 'fail', details: { configured: false } }
    try {
      // A probe: its short deadline never counts against the shared Neon circuit.
      await db.query(sql`SELECT 1`, {
        timeoutMs: config.tunables.healthCheckTimeoutMs,
        trace,
        probe: true,
      })
      return { status: 'pass', details: { configured: true } }
    } catch (err) {
      return { status: 'fail', details: { configured: true, error: describe(err) } }
    }
  })
}

export function redisCheck(
  services: Pick<CheckDeps, 'redis' | 'config'>,
  trace?: Trace,
): Promise<CheckResult> {
  return timed('redis', async () => {
    const { redis, config } = services
    // Redis is optional: without it the app runs on per-isolate state, which is a warning.
    if (!redis) return { status: 'warn', details: { configured: false } }
    try {
      await withTimeout(
        redis.run('ping', (r) => r.ping(), { trace }),
        config.tunables.healthCheckTimeoutMs,
      )
      return { status: 'pass', details: { configured: true } }
    } catch (err) {
      return { status: 'warn', details: { configured: true, error: describe(err) } }
    }
  })
}

/** Any circuit open → warn; the database's open → fail. */
export function circuitBreakersCheck(services: Pick<CheckDeps, 'breakers'>): CheckResult {
  const breakers = services.breakers.list()
  const open = breakers.filter((b) => b.state !== 'CLOSED')
  const neonOpen = open.some((b) => b.name === 'neon')
  return {
    name: 'circuit_breakers',
    status: neonOpen ? 'fail' : open.length ? 'warn' : 'pass',
    durationMs: 0,
    details: Object.fromEntries(
      breakers.map((b) => [
        b.name,
        { state: b.state, since: b.since, open_until: b.openUntil, shared: b.shared, ...b.metrics },
      ]),
    ),
  }
}

/** The signing keys load, a token round-trips through sign and verify, and what it cached. */
export function tokenManagerCheck(
  services: Pick<CheckDeps, 'auth' | 'config' | 'redis' | 'db'>,
): Promise<CheckResult> {
  return timed('token_manager', async () => {
    const { auth, config } = services
    try {
      const ring = await auth.keys()
      return {
        status: 'pass',
        details: {
          signing_kid: ring.signing.kid,
          signing_alg: ring.signing.alg,
          verifying_kids: ring.verifying.size,
          published_keys: ring.jwks.keys.length,
          rotation_in_progress: ring.verifying.size > 1,
          access_token_ttl_seconds: config.tunables.accessTokenTtlSeconds,
          verified_tokens_cached: auth.verified.size,
          revocations: services.redis
            ? 'global (redis, postgres when redis cannot answer)'
            : services.db
              ? 'global (postgres)'
              : 'per isolate',
          // Agents whose revocations this isolate holds itself (no Redis, or Redis failing).
          revocation_agents_held: auth.revocations.isolateAgents,
          revocation_agents_max: config.tunables.revocationMaxAgents,
          rate_limits: services.redis ? 'global (redis)' : 'per isolate',
        },
      }
    } catch (err) {
      // Which variable is wrong, never its value.
      const variable = err instanceof SigningKeyError ? err.variable : undefined
      return { status: 'fail', details: { signing_key: 'unavailable', variable } }
    }
  })
}

/** A short, safe description of an upstream failure: its kind, never its raw text. */
export function describe(err: unknown): string {
  if (err instanceof CircuitOpenError) return 'circuit_open'
  if (err instanceof Error) {
    if (err.name === 'TimeoutError' || err.name === 'AbortError') return 'timeout'
    if (/connect|fetch failed|network|refused|ECONN/i.test(err.message)) return 'unreachable'
    return 'error'
  }
  return 'error'
}
