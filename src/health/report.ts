// The authenticated health report (POST /api/v1/agent/health): checks, metrics, alerts and
// recommendations, shaped as the contract says. Read at 3 a.m.: it states facts with their
// units and never a secret, token or connection string.

import type { HealthReport, Heartbeat } from '../contract/health.ts'
import type { Clock } from '../kernel/clock.ts'
import type { EventBus } from '../kernel/events.ts'
import type { Isolate, PlatformName } from '../kernel/isolate.ts'
import type { CallScope } from '../kernel/scope.ts'
import type { Trace } from '../kernel/trace.ts'
import type { ProgressService } from '../progress/service.ts'
import type { RedisStore } from '../redis.ts'
import { withTimeout } from '../resilience/timeout.ts'
import { AlertEngine } from './alerts.ts'
import {
  type CheckDeps,
  type CheckResult,
  circuitBreakersCheck,
  configurationCheck,
  databaseCheck,
  redisCheck,
  tokenManagerCheck,
} from './checks.ts'
import { GlobalCounters } from './global-counters.ts'
import { Heartbeats, type StoredHeartbeat } from './heartbeats.ts'
import { MetricsCollector } from './metrics.ts'
import { recommend } from './recommendations.ts'

export interface HealthState {
  metrics: MetricsCollector
  alerts: AlertEngine
  heartbeats: Heartbeats
  /** Request and error counts across isolates (with Redis). */
  global?: GlobalCounters
}

export function createHealthState(deps: {
  events: EventBus
  redis?: RedisStore
  now: () => number
}): HealthState {
  const metrics = new MetricsCollector(deps.now)
  metrics.listen(deps.events)
  return {
    metrics,
    alerts: new AlertEngine(),
    heartbeats: new Heartbeats(deps.redis),
    global: deps.redis ? new GlobalCounters(deps.redis, deps.now) : undefined,
  }
}

/** Memory where the runtime reports it (a Chromium extension); never an invented number. */
function memory(): Record<string, number> | 'unavailable' {
  const perf = globalThis.performance as {
    memory?: { usedJSHeapSize?: number; jsHeapSizeLimit?: number }
  }
  const used = perf?.memory?.usedJSHeapSize
  return typeof used === 'number'
    ? { used_js_heap_bytes: used, js_heap_limit_bytes: perf.memory?.jsHeapSizeLimit ?? 0 }
    : 'unavailable'
}

/** What the report reads, named one by one (the isolate's services have these members). */
export interface ReportDeps extends CheckDeps {
  clock: Clock
  health: HealthState
  progress: Pick<ProgressService, 'buffer'>
  isolate: Isolate
  platform: PlatformName
}

export async function healthReport(
  services: ReportDeps,
  input: { agentId: string; trace: Trace; scope: CallScope; heartbeat: StoredHeartbeat | null },
): Promise<HealthReport> {
  const { config, clock, health, progress, isolate } = services
  const timeoutMs = config.tunables.healthCheckTimeoutMs
  const now = clock.now()

  const [database, redis, tokenManager, buffer, global] = await Promise.all([
    databaseCheck(services, input.trace),
    redisCheck(services, input.trace),
    tokenManagerCheck(services),
    progress.buffer
      ? withTimeout(progress.buffer.stats(input.scope), timeoutMs).catch(() => undefined)
      : Promise.resolve(undefined),
    health.global
      ? withTimeout(health.global.read(input.scope), timeoutMs).catch(() => undefined)
      : Promise.resolve(undefined),
  ])
  const checks: CheckResult[] = [
    database,
    redis,
    circuitBreakersCheck(services),
    tokenManager,
    configurationCheck(services),
  ]

  const snapshot = health.metrics.snapshot()
  const oldestAgeMs = buffer?.oldestAt == null ? null : Math.max(0, now - buffer.oldestAt)
  const alerts = health.alerts.evaluate({
    now,
    lastMinute: snapshot.requests.lastMinute,
    breakers: services.breakers.list(),
    oldestBufferedAgeMs: oldestAgeMs,
    deadLetters: buffer?.deadLetters ?? null,
    configurationFailing: config.failClosed,
  })
  const recommendations = recommend(alerts, checks, snapshot)

  const failing =
    checks.some((c) => c.status === 'fail') || alerts.some((a) => a.severity === 'critical')
  const warning = checks.some((c) => c.status === 'warn') || alerts.length > 0
  const overall = failing ? 'UNHEALTHY' : warning ? 'DEGRADED' : 'HEALTHY'
  const lastFive = snapshot.requests.lastFiveMinutes

  return {
    status: failing ? 'unhealthy' : warning ? 'degraded' : 'healthy',
    agent_id: input.agentId,
    environment: config.environment,
    last_seen: input.heartbeat?.last_seen ?? null,
    heartbeat: input.heartbeat,
    health: {
      overall,
      checks: checks.map((c) => ({
        name: c.name as HealthReport['health']['checks'][number]['name'],
        status: c.status,
        duration_ms: c.durationMs,
        details: c.details,
      })),
      metrics: {
        isolate: {
          id: isolate.id,
          uptime_ms: now - isolate.startedAt,
          platform: services.platform,
        },
        requests: snapshot.requests,
        routes: snapshot.routes,
        mcp_tools: snapshot.tools,
        cache: snapshot.cache,
        tokens: snapshot.tokens,
        progress: {
          ...snapshot.progress,
          buffer: buffer
            ? {
                depth: buffer.ready + buffer.processing,
                ready: buffer.ready,
                claimed: buffer.processing,
                oldest_age_ms: oldestAgeMs,
                dead_letters: buffer.deadLetters,
              }
            : progress.buffer
              ? 'unavailable'
              : 'not buffered: no Redis, updates commit directly',
          flushes: snapshot.flushes,
        },
        upstreams: snapshot.upstreams,
        degraded_answers: snapshot.degradedAnswers,
        rate_limited: snapshot.rateLimited,
        all_isolates: global ?? (health.global ? 'unavailable' : 'not aggregated: no Redis'),
        memory: memory(),
      },
      alerts,
      recommendations,
    },
    performance: {
      responseTime: lastFive.mean ?? 0,
      uptime: now - isolate.startedAt,
      requestCounts: Object.fromEntries(snapshot.routes.map((r) => [r.route, r.total])),
      errorRate: lastFive.errorRate,
    },
  }
}

/**
 * POST /api/v1/agent/health: records the agent's heartbeat when it sent one (else reads its
 * last), then the report, which carries it. Always an answer: the report says what fails.
 */
export async function agentHealth(
  deps: ReportDeps,
  request: { agentId: string; heartbeat: Heartbeat | undefined },
  scope: CallScope & { trace: Trace },
): Promise<HealthReport> {
  const { agentId, heartbeat } = request
  const now = deps.clock.now()
  const beat = heartbeat
    ? await deps.health.heartbeats.record(agentId, heartbeat, now, scope)
    : await deps.health.heartbeats.last(agentId, now, scope)
  return healthReport(deps, { agentId, trace: scope.trace, scope, heartbeat: beat })
}
