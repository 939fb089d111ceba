// Everything a request needs that outlives it, built once per isolate from the validated
// configuration and handed to handlers through Hono's typed context (`c.get('services')`).
import { type AuthState, createAuthState } from './auth/state.ts'
import type { SwrCache } from './cache/swr.ts'
import { toEnvSource } from './config/env-source.ts'
import { type Config, type EnvSource, loadConfig } from './config/index.ts'
import { createDatabase, type Database } from './db/client.ts'
import { createHealthState, type HealthState } from './health/report.ts'
import { type Clock, systemClock } from './kernel/clock.ts'
import { EventBus } from './kernel/events.ts'
import { type Isolate, newIsolateId, type PlatformName } from './kernel/isolate.ts'
import { createLogger, type Logger, type LogSink } from './kernel/log.ts'
import { createProgressService, type ProgressService } from './progress/service.ts'
import { createRedisStore, type RedisStore } from './redis.ts'
import { BreakerRegistry } from './resilience/registry.ts'
import { redisBreakerStore } from './resilience/shared-store.ts'
import { type CachedContext, contextCache } from './users/context.ts'

export interface Services {
  config: Config
  log: Logger
  events: EventBus
  clock: Clock
  isolate: Isolate
  platform: PlatformName
  /** Injected randomness (jitter), so property tests can fix it. */
  random: () => number
  breakers: BreakerRegistry
  auth: AuthState
  caches: { userContext: SwrCache<CachedContext> }
  progress: ProgressService
  health: HealthState
  /** Absent when DATABASE_URL is not configured (development only; elsewhere fail-closed). */
  db?: Database
  /** Absent when Upstash is not configured: the app then runs on per-isolate state. */
  redis?: RedisStore
}

export interface ServiceOptions {
  clock?: Clock
  logSink?: LogSink
  platform?: PlatformName
  random?: () => number
  /** Off only to measure what metrics cost (the bench). */
  metrics?: boolean
}

export function buildServices(env: EnvSource, options: ServiceOptions = {}): Services {
  const config = loadConfig(env)
  const clock = options.clock ?? systemClock
  const isolate: Isolate = { id: newIsolateId(), startedAt: clock.now() }
  const log = createLogger({
    level: config.tunables.logLevel,
    sink: options.logSink,
    base: { env: config.environment, isolate: isolate.id },
  })
  const events = new EventBus()

  for (const finding of config.findings) {
    const fields = { variable: finding.variable, severity: finding.severity }
    if (finding.severity === 'fatal') log.error(`configuration: ${finding.message}`, fields)
    else log.warn(`configuration: ${finding.message}`, fields)
  }

  const random = options.random ?? Math.random
  const now = () => clock.now()
  const t = config.tunables
  const breakers = new BreakerRegistry({ tunables: t, now, random, isolate: isolate.id, events })

  const redis = config.redis
    ? createRedisStore({
        config: config.redis,
        keyPrefix: config.redisKeyPrefix,
        timeoutMs: t.redisTimeoutMs,
        events,
        breaker: breakers.get('redis'),
      })
    : undefined
  const db = config.databaseUrl
    ? createDatabase({
        url: config.databaseUrl,
        fetchEndpoint: config.neonFetchEndpoint,
        timeoutMs: t.databaseTimeoutMs,
        events,
        // Shared with the other isolates through Redis when there is one.
        breaker: breakers.get('neon', {
          shared: redis ? redisBreakerStore(redis) : undefined,
          probeLeaseMs: t.databaseTimeoutMs + 1000,
        }),
        retry: { attempts: 2, baseDelayMs: 100, budgetMs: t.databaseTimeoutMs, now, random },
      })
    : undefined

  const auth = createAuthState({ config, redis, log, events })
  // Revocations outlive a Redis outage in Postgres (src/auth/revocation.ts).
  if (db) auth.revocations.attachDatabase(db, { timeoutMs: t.databaseTimeoutMs })
  const platform = options.platform ?? 'node'
  const caches = { userContext: contextCache(t, now, events) }
  const progress = createProgressService({
    config,
    db,
    redis,
    contextCache: caches.userContext,
    now,
  })
  const health = createHealthState({ events, redis, now })
  if (options.metrics === false) health.metrics.stopListening()
  return {
    progress,
    health,
    config,
    log,
    events,
    clock,
    isolate,
    platform,
    random,
    breakers,
    auth,
    caches,
    db,
    redis,
  }
}

/**
 * Keeps one Services per isolate. Platforms usually pass the same env object on every
 * request; when a different object arrives (tests, a redeployed binding), its variables are
 * compared and the services are rebuilt only if they really changed.
 */
export class ServiceCache {
  readonly #options: ServiceOptions
  #byObject = new WeakMap<object, Services>()
  #last?: { fingerprint: string; services: Services }

  constructor(options: ServiceOptions = {}) {
    this.#options = options
  }

  get(envObject: object): Services {
    const known = this.#byObject.get(envObject)
    if (known) return known
    const env = toEnvSource(envObject)
    // Code-unit order: deterministic, and no collator to load (a first localeCompare costs a
    // cold isolate ~10 ms of CPU building ICU's).
    const fingerprint = JSON.stringify(
      Object.entries(env).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
    )
    let services = this.#last?.fingerprint === fingerprint ? this.#last.services : undefined
    if (!services) {
      services = buildServices(env, this.#options)
      this.#last = { fingerprint, services }
    }
    this.#byObject.set(envObject, services)
    return services
  }
}
