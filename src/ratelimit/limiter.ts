// Rate limiting: global with Redis through @upstash/ratelimit, per isolate without it.
//
// Two refinements over calling `ratelimit.limit()` on every request:
//  - Leases. A busy limit (600/min per agent) takes a few units from Redis at once and spends
//    them locally, so a hot agent costs one Redis call per lease rather than per request. The
//    overshoot is bounded by one lease per isolate, and a lease never outlives its window.
//  - Fallback. When Redis is absent or failing, a per-isolate sliding window keeps the limit
//    (and so brute-force protection) on; a Redis error never fails the request.
import { Ratelimit } from '@upstash/ratelimit'
import { BoundedLru } from '../cache/lru.ts'
import type { CallScope } from '../platform.ts'
import type { RedisStore } from '../redis.ts'
import { SlidingWindowLimiter } from './sliding-window.ts'
import type { LimitDecision, LimitSpec } from './types.ts'

export type { LimitDecision, LimitSpec } from './types.ts'

/** `defer` takes the limiter's background work (ratelimit's `pending`). */
export interface LimitContext extends CallScope {
  now: number
}

export interface Limiter {
  readonly spec: LimitSpec
  /** Counts one request against `id` (when allowed) and says whether it may proceed. */
  consume(id: string, ctx: LimitContext): Promise<LimitDecision>
  /** What `consume` would answer, without counting anything. */
  peek(id: string, ctx: LimitContext): Promise<LimitDecision>
}

export interface LimiterOptions {
  name: string
  spec: LimitSpec
  redis?: RedisStore
  /** Identifiers tracked per isolate (fallback windows and leases). */
  maxIdentifiers: number
  /** Units taken from Redis at a time; 1 disables leasing. */
  leaseSize?: number
  onRedisError?: (err: unknown) => void
}

interface Lease {
  remaining: number
  /** Global remaining when the lease was taken, minus what this isolate spent since. */
  globalRemaining: number
}

export function createLimiter(options: LimiterOptions): Limiter {
  const { spec, redis } = options
  const local = new SlidingWindowLimiter(spec, options.maxIdentifiers)
  if (!redis) {
    return {
      spec,
      consume: async (id, ctx) => local.consume(id, ctx.now),
      peek: async (id, ctx) => local.peek(id, ctx.now),
    }
  }

  const global = new Ratelimit({
    redis: redis.client,
    limiter: Ratelimit.slidingWindow(spec.limit, `${spec.windowMs} ms`),
    prefix: redis.key('ratelimit', options.name),
    analytics: false,
    enableProtection: false, // it would fetch a deny list from the internet
    ephemeralCache: false, // an unbounded Map; our leases and fallback are bounded
    timeout: 0, // no "allow on timeout": our Redis client times out and we fall back
  })
  const leaseSize = Math.max(1, Math.min(options.leaseSize ?? 1, spec.limit))
  const leases = new BoundedLru<string, Lease>({ maxEntries: options.maxIdentifiers })

  const fallback = (err: unknown) => {
    options.onRedisError?.(err)
  }

  const take = async (id: string, rate: number, ctx: LimitContext) => {
    const result = await redis.run('ratelimit', () => global.limit(id, { rate }), ctx)
    ctx.defer?.(result.pending)
    return result
  }

  return {
    spec,
    async consume(id, ctx) {
      const lease = leases.get(id, ctx.now)
      if (lease && lease.value.remaining > 0) {
        lease.value.remaining--
        lease.value.globalRemaining = Math.max(0, lease.value.globalRemaining - 1)
        return {
          allowed: true,
          limit: spec.limit,
          remaining: lease.value.globalRemaining,
          resetAt: lease.expiresAt,
        }
      }
      try {
        let result = await take(id, leaseSize, ctx)
        let granted = leaseSize
        if (!result.success && leaseSize > 1) {
          // Fewer than a lease left in the window: ask for just this request.
          result = await take(id, 1, ctx)
          granted = 1
        }
        if (result.success && granted > 1 && result.reset > ctx.now) {
          leases.set(
            id,
            { remaining: granted - 1, globalRemaining: result.remaining + granted - 1 },
            { now: ctx.now, ttlMs: result.reset - ctx.now },
          )
        }
        return {
          allowed: result.success,
          limit: spec.limit,
          remaining: Math.max(
            0,
            result.success ? result.remaining + granted - 1 : result.remaining,
          ),
          resetAt: result.reset,
        }
      } catch (err) {
        fallback(err)
        return local.consume(id, ctx.now)
      }
    },
    async peek(id, ctx) {
      try {
        const result = await redis.run('ratelimit', () => global.getRemaining(id), ctx)
        return {
          allowed: result.remaining > 0,
          limit: spec.limit,
          remaining: Math.max(0, result.remaining),
          resetAt: result.reset,
        }
      } catch (err) {
        fallback(err)
        return local.peek(id, ctx.now)
      }
    },
  }
}
