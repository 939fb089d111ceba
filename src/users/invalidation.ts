// Cross-isolate invalidation of cached user context. The isolate that changes a user's
// progress drops its own entry at once and records the user in a Redis sorted set (scored
// by time); every isolate polls that set at most once per interval, in the background, and
// drops what it lists. Other isolates therefore converge within about one interval.
import type { SwrCache } from '../cache/swr.ts'
import type { CallScope } from '../platform.ts'
import type { RedisStore } from '../redis.ts'
import type { CachedContext } from './context.ts'

/** How long an invalidation stays listed: far longer than any isolate's poll interval. */
const RETAIN_MS = 10 * 60 * 1000

export class ContextInvalidations {
  readonly #cache: SwrCache<CachedContext>
  readonly #redis?: RedisStore
  readonly #now: () => number
  readonly #pollMs: number
  #seenUntil: number
  #lastPoll = Number.NEGATIVE_INFINITY
  #polling = false

  constructor(options: {
    cache: SwrCache<CachedContext>
    redis?: RedisStore
    now: () => number
    pollMs: number
  }) {
    this.#cache = options.cache
    this.#redis = options.redis
    this.#now = options.now
    this.#pollMs = options.pollMs
    this.#seenUntil = options.now()
  }

  async publish(users: readonly string[], scope?: CallScope): Promise<void> {
    for (const user of users) this.#cache.invalidate(user)
    const redis = this.#redis
    if (!redis || users.length === 0) return
    const key = redis.key('context', 'invalidations')
    const now = this.#now()
    const members = users.map((member) => ({ score: now, member }))
    const [first, ...rest] = members
    await redis.run(
      'context-invalidate',
      async (r) => {
        await r.zadd(key, first!, ...rest)
        await r.zremrangebyscore(key, 0, now - RETAIN_MS)
      },
      scope,
    )
  }

  /** Starts a background poll when the last one is older than the interval. */
  poll(scope: CallScope): void {
    const redis = this.#redis
    const now = this.#now()
    if (!redis || this.#polling || now - this.#lastPoll < this.#pollMs) return
    this.#polling = true
    this.#lastPoll = now
    const since = this.#seenUntil
    const work = redis
      .run(
        'context-invalidations',
        (r) =>
          r.zrange<string[]>(redis.key('context', 'invalidations'), since, '+inf', {
            byScore: true,
            withScores: true,
          }),
        scope,
      )
      .then((flat) => {
        for (let i = 0; i + 1 < flat.length; i += 2) {
          this.#cache.invalidate(String(flat[i]))
          this.#seenUntil = Math.max(this.#seenUntil, Number(flat[i + 1]))
        }
      })
      .catch(() => {}) // Redis down: entries expire by their TTL instead
      .finally(() => {
        this.#polling = false
      })
    scope.defer?.(work)
  }
}
