// The isolate's progress machinery: the Redis buffer when Redis is configured, what it knows
// about direct commits (one dedupe truth across both stores), and context invalidation for
// changed users. Nothing here is shared between requests but plain state: every request
// awaits only its own reads and writes.
import { BoundedLru } from '../cache/lru.ts'
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
import type { KnownKey } from './idempotency.ts'
import { type BufferedUpdate, eventKeyOf } from './model.ts'

export interface ProgressService {
  buffer?: ProgressBuffer
  directCommits: DirectCommits
  /**
   * The keys this isolate appended to the buffer (their fingerprints), for the dedupe window:
   * while Redis cannot be reached, a direct commit is checked against them, so an update this
   * instance queued is not recorded again under its key with other content.
   */
  buffered: BufferedKeys
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

/** Keys remembered per isolate (~200 bytes each): a burst's worth, not a second store. */
const BUFFERED_KEYS_MAX = 10_000

/** What this isolate appended to the buffer, by event key (see ProgressService.buffered). */
export class BufferedKeys {
  readonly #keys = new BoundedLru<string, string>({ maxEntries: BUFFERED_KEYS_MAX })
  readonly #ttlMs: number

  constructor(ttlMs: number) {
    this.#ttlMs = ttlMs
  }

  /** Remembers `updates`, just appended to the buffer at `now` (ms). */
  note(updates: readonly BufferedUpdate[], now: number): void {
    for (const u of updates) {
      if (u.fingerprint === undefined) continue
      const key = eventKeyOf(u)
      // The first acceptance starts the window, as the stores count it.
      if (this.#keys.get(key, now)) continue
      this.#keys.set(key, u.fingerprint, { now, ttlMs: this.#ttlMs })
    }
  }

  /** What is remembered of `updates`' keys, in the shape Postgres' answer has (KnownKey). */
  known(updates: readonly BufferedUpdate[], now: number): Map<string, KnownKey> {
    const known = new Map<string, KnownKey>()
    for (const u of updates) {
      const key = eventKeyOf(u)
      const entry = this.#keys.get(key, now)
      if (entry) known.set(key, { fingerprints: [entry.value], until: entry.expiresAt })
    }
    return known
  }
}

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
    buffered: new BufferedKeys(t.progressDedupeTtlMs),
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
