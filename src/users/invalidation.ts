// Cross-isolate invalidation of cached user context. The isolate that changes a user's
// progress drops its own entry at once and records the user in a Redis sorted set (scored
// by time); every isolate polls that set at most once per interval, in the background, and
// drops what it lists. Other isolates therefore converge within about one interval.
//
// The poll reads from the newest score it has seen, inclusive (another isolate may publish
// at that same millisecond later), so it remembers what it has already applied there (and
// what it published itself) and does not drop those entries again: a repeated drop would
// discard the context re-read since, and disown a read under way.
import type { SwrCache } from '../cache/swr.ts'
import type { CallScope } from '../kernel/scope.ts'
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
  /** Invalidations applied here, user → score, kept while the poll can still list them. */
  readonly #applied = new Map<string, number>()
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
    // An isolate that publishes but never polls still forgets what Redis has dropped.
    this.#forgetBelow(Math.max(this.#seenUntil, now - RETAIN_MS))
    for (const user of users) this.#applied.set(user, now)
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

  /** Below `score` no poll lists anything again: nothing there needs remembering. */
  #forgetBelow(score: number): void {
    for (const [user, applied] of this.#applied) {
      if (applied < score) this.#applied.delete(user)
    }
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
          const user = String(flat[i])
          const score = Number(flat[i + 1])
          this.#seenUntil = Math.max(this.#seenUntil, score)
          if (this.#applied.get(user) === score) continue
          this.#applied.set(user, score)
          this.#cache.invalidate(user)
        }
        this.#forgetBelow(this.#seenUntil)
      })
      .catch(() => {}) // Redis down: entries expire by their TTL instead
      .finally(() => {
        this.#polling = false
      })
    scope.defer?.(work)
  }
}
