// The isolate's progress machinery: the Redis buffer when Redis is configured, what it knows
// about direct commits (one dedupe truth across both stores), and context invalidation for
// changed users. Nothing here is shared between requests but plain state: every request
// awaits only its own reads and writes.
import type { SwrCache } from '../cache/swr.ts'
import type { Config, Tunables } from '../config/index.ts'
import type { Database } from '../db/client.ts'
import type { Clock } from '../kernel/clock.ts'
import type { EventBus } from '../kernel/events.ts'
import type { Logger } from '../kernel/log.ts'
import type { CallScope } from '../kernel/scope.ts'
import type { RedisStore } from '../redis.ts'
import type { CachedContext } from '../users/context.ts'
import { ContextInvalidations } from '../users/invalidation.ts'
import { type BufferOptions, ProgressBuffer } from './buffer.ts'
import { DirectCommits } from './dedupe.ts'

export interface ProgressService {
  buffer?: ProgressBuffer
  directCommits: DirectCommits
  invalidations: ContextInvalidations
  /** Drops changed users' cached context here and, through Redis, everywhere. */
  invalidate(users: readonly string[], scope?: CallScope): void
}

/**
 * What accepting, flushing and reading progress use, named one by one (the isolate's services
 * have these members, and a unit test can pass just these).
 */
export interface ProgressDeps {
  progress: ProgressService
  /** Absent when no database is configured. */
  db?: Database
  clock: Clock
  config: { tunables: Tunables }
  /** The circuits of the two stores: an open one is not even tried. */
  breakers: { get(upstream: 'neon' | 'redis'): { isOpen(): boolean } }
  log: Logger
  events: EventBus
}

const BATCH_TTL_MS = 7 * 24 * 60 * 60 * 1000

/** The buffer's bounds from the tunables (the services and the operators' CLI share them). */
export function bufferOptions(t: Tunables): BufferOptions {
  return {
    maxDepth: t.progressBufferMaxDepth,
    maxPerAgent: Math.max(
      1,
      Math.floor((t.progressBufferMaxDepth * t.progressBufferAgentSharePercent) / 100),
    ),
    claimTimeoutMs: t.progressClaimTimeoutMs,
    dedupeTtlMs: t.progressDedupeTtlMs,
    batchTtlMs: BATCH_TTL_MS,
  }
}

export function createProgressService(deps: {
  config: Config
  db?: Database
  redis?: RedisStore
  contextCache: SwrCache<CachedContext>
  now: () => number
}): ProgressService {
  const t = deps.config.tunables
  const invalidations = new ContextInvalidations({
    cache: deps.contextCache,
    redis: deps.redis,
    now: deps.now,
    pollMs: t.contextInvalidationPollMs,
  })
  return {
    buffer: deps.redis ? new ProgressBuffer(deps.redis, bufferOptions(t)) : undefined,
    directCommits: new DirectCommits({
      db: deps.db,
      now: deps.now,
      ttlMs: t.progressDirectCheckTtlMs,
      windowMs: t.progressDedupeTtlMs,
      timeoutMs: t.databaseTimeoutMs,
    }),
    invalidations,
    invalidate(users, scope) {
      const publishing = invalidations.publish(users, scope).catch(() => {})
      scope?.defer?.(publishing)
    },
  }
}
