// Rate limiting: global with Redis through @upstash/ratelimit, per isolate without it.
//
// Every count is taken before the work it limits and is atomic where it is kept (one Lua
// script in Redis; one synchronous step in the isolate), so N requests sent at once count as N
// and the (N+1)th past the limit is refused — a limit is never a read followed by a write.
//
//  - Refunds. A count can be given back (`ticket.refund()`): the failure budgets count every
//    attempt up front and give the count back when the attempt succeeds. @upstash/ratelimit
//    refunds with a negative rate; a refund lands only in the window it was counted in.
//  - Leases. A busy limit (600/min per agent) takes a few units from Redis at once and spends
//    them in the isolate, so a hot agent costs one Redis call per lease rather than per request.
//    Only one lease request per (isolate, id) is in flight at a time; requests arriving
//    meanwhile take one unit each with their own Redis call (never by awaiting the lease
//    request: on Workers a request may only await its own I/O). So N requests sent at once
//    spend at most N + lease − 1 units: the bound is one partly spent lease per isolate (a
//    request Redis refuses spends a unit of a lease that arrived meanwhile). Never
//    more requests than the limit are allowed; an isolate may hold up to lease − 1 units it has
//    not spent yet (others then see the limit reached that much earlier).
//  - RateLimit-Remaining. What Redis last said remains (answers to concurrent calls arrive in
//    any order: a lower one is a later count, and so is the answer to a call sent after the
//    kept one arrived, higher as the window before weighs less; a refund's answer replaces
//    it, since a refund raises what remains: one arriving after a later count's answer
//    overstates it until the next answer), plus the units
//    of this isolate's lease not yet spent. With one isolate that is exact; with several it is
//    off by what other isolates spent since this one last asked Redis (at most a lease of its
//    own requests ago) and by their unspent leases (at most lease − 1 each).
//  - Fallback. When Redis is absent or failing, a per-isolate sliding window keeps the limit
//    (and so brute-force protection) on; a Redis error never fails the request. It counts on
//    top of the units this isolate took from Redis in this window and the one before (weighed
//    as Redis weighs them), so losing Redis does not hand this isolate a second limit's worth,
//    nor refuse what Redis would allow it. (Other isolates' units are not known here; and
//    after Redis recovers it has not counted what the fallback allowed.)
import { Ratelimit } from '@upstash/ratelimit'
import { BoundedLru } from '../cache/lru.ts'
import type { CallScope } from '../kernel/scope.ts'
import { keyPart, type RedisStore } from '../redis.ts'
import { type BaseCount, SlidingWindowLimiter } from './sliding-window.ts'
import type { LimitDecision, LimitSpec } from './types.ts'

export type { LimitDecision, LimitSpec } from './types.ts'

/** `defer` takes the limiter's background work (ratelimit's `pending`). */
export interface LimitContext extends CallScope {
  now: number
}

/** A decision; when it allowed the request, `refund` gives its unit back (once). */
export interface LimitTicket extends LimitDecision {
  refund(ctx: LimitContext): Promise<void>
}

export interface Limiter {
  readonly spec: LimitSpec
  /** Counts one request against `id` when that stays within the limit, atomically. */
  consume(id: string, ctx: LimitContext): Promise<LimitTicket>
}

export interface LimiterOptions {
  name: string
  spec: LimitSpec
  redis?: RedisStore
  /** Identifiers tracked per isolate (fallback windows and leases). */
  maxIdentifiers: number
  /** Units taken from Redis at a time; 1 disables leasing. */
  leaseSize?: number
  /** How long a lease request may be in flight before another may start (its timeout). */
  leaseRequestTimeoutMs?: number
  onRedisError?: (err: unknown) => void
}

interface Lease {
  /** Units taken from Redis and not yet spent here. */
  remaining: number
}

/**
 * Redis's latest known `remaining` for an id in the window ending at `reset`; `after`: how many
 * calls this isolate had sent to Redis when it arrived (a call sent later counts later).
 */
interface Seen {
  remaining: number
  reset: number
  after: number
}

/** A Redis answer, and the number of the call that asked (this isolate's count of calls). */
interface Answer {
  success: boolean
  remaining: number
  reset: number
  sent: number
}

const NOTHING_TO_REFUND = async () => {}

export function createLimiter(options: LimiterOptions): Limiter {
  const { spec, redis } = options
  const local = new SlidingWindowLimiter(spec, options.maxIdentifiers)

  const fromLocal = (id: string, now: number, base?: BaseCount): LimitTicket => {
    const decision = local.consume(id, now, 1, base)
    return {
      ...decision,
      refund: decision.allowed
        ? once(async (ctx) => local.refund(id, now, ctx.now))
        : NOTHING_TO_REFUND,
    }
  }

  if (!redis) {
    return { spec, consume: async (id, ctx) => fromLocal(id, ctx.now) }
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
  /** Ids whose lease request is in flight in this isolate (a flag, never a shared promise). */
  const leasing = new BoundedLru<string, true>({ maxEntries: options.maxIdentifiers })
  const leasingTtlMs = options.leaseRequestTimeoutMs ?? 5000
  const seen = new BoundedLru<string, Seen>({ maxEntries: options.maxIdentifiers })
  /** Units this isolate holds in Redis per id (what it took, less what it gave back). */
  const taken = new BoundedLru<string, BaseCount>({ maxEntries: options.maxIdentifiers })

  /** Adds `units` (negative: given back) to the window ending at `reset`. */
  const count = (id: string, units: number, reset: number, now: number) => {
    const prior = taken.get(id, now)?.value
    if (prior && reset < prior.windowEnd) {
      // A late answer of the window before (it still weighs), or of one that no longer does.
      if (reset === prior.windowEnd - spec.windowMs) prior.previous += units
      return
    }
    const previous = prior?.windowEnd === reset - spec.windowMs ? prior.current : 0
    const next: BaseCount =
      prior?.windowEnd === reset
        ? { ...prior, current: prior.current + units }
        : { windowEnd: reset, current: units, previous }
    // Kept while it can weigh: through the window after its own.
    taken.set(id, next, { now, ttlMs: reset + spec.windowMs - now })
  }

  /** Keeps the lowest answer of the window (a new window replaces it). */
  /**
   * Keeps the latest count of the window: a new window's; a lower one (answers to concurrent
   * calls arrive in any order, and a lower one is a later count); or one asked for after the
   * kept one arrived (a later count, higher as the window before weighs less and less).
   */
  const note = (id: string, result: Answer, now: number) => {
    const prior = seen.get(id, now)?.value
    if (
      !prior ||
      result.reset > prior.reset ||
      result.remaining < prior.remaining ||
      result.sent > prior.after
    ) {
      remember(id, result, now)
    }
  }
  const remember = (id: string, result: Answer, now: number) =>
    seen.set(
      id,
      { remaining: result.remaining, reset: result.reset, after: sent },
      { now, ttlMs: result.reset - now },
    )
  /** Remaining for the agent as this isolate knows it: Redis's count plus its unspent lease. */
  const remainingFor = (id: string, now: number) =>
    (seen.get(id, now)?.value.remaining ?? spec.limit) + (leases.get(id, now)?.value.remaining ?? 0)

  /** Calls sent to Redis by this isolate: orders its answers (see Seen.after). */
  let sent = 0
  const take = async (id: string, rate: number, ctx: LimitContext): Promise<Answer> => {
    const order = ++sent
    // The library appends `:<id>:<window>` to the prefix: the id is a key part like any other.
    const result = await redis.run('ratelimit', () => global.limit(keyPart(id), { rate }), ctx)
    ctx.defer?.(result.pending)
    return {
      success: result.success,
      remaining: result.remaining,
      reset: result.reset,
      sent: order,
    }
  }

  /** Gives one unit back in Redis, if still within the window it was taken in. */
  const refundGlobal = (id: string, reset: number) =>
    once(async (ctx: LimitContext) => {
      // The library's windows follow the wall clock, as its own check does.
      if (Date.now() >= reset) return
      try {
        const result = await take(id, -1, ctx)
        count(id, -1, reset, ctx.now)
        // A refund raises the count Redis keeps: its answer replaces the lowest one seen,
        // else RateLimit-Remaining would stay at a burst's low until the window's reset.
        remember(id, result, ctx.now)
      } catch (err) {
        // The unit stays counted: the limit errs on the safe side.
        options.onRedisError?.(err)
      }
    })

  /** Gives a unit back to the lease it came from, while that lease is still held. */
  const refundToLease = (id: string, lease: Lease) =>
    once(async () => {
      if (leases.peek(id)?.value !== lease) return
      lease.remaining++
    })

  const fromLease = (
    id: string,
    lease: { value: Lease; expiresAt: number },
    now: number,
  ): LimitTicket => {
    lease.value.remaining--
    return {
      allowed: true,
      limit: spec.limit,
      remaining: Math.max(0, remainingFor(id, now)),
      resetAt: lease.expiresAt,
      refund: refundToLease(id, lease.value),
    }
  }

  return {
    spec,
    async consume(id, ctx) {
      const lease = leases.get(id, ctx.now)
      if (lease && lease.value.remaining > 0) return fromLease(id, lease, ctx.now)

      // One lease request per id at a time, and only once this window's count is known to have
      // room for it: the library's script checks the count before adding, so a lease landing
      // past the limit is refused having counted its units (the window before, still weighing,
      // can leave less room than a lease). A window's first request here asks for one unit.
      const known = seen.get(id, ctx.now)?.value.remaining
      const roomy = known !== undefined && known >= 2 * leaseSize
      const leader = leaseSize > 1 && roomy && !leasing.get(id, ctx.now)
      if (leader) leasing.set(id, true, { now: ctx.now, ttlMs: leasingTtlMs })
      try {
        let result = await take(id, leader ? leaseSize : 1, ctx)
        let granted = leader ? leaseSize : 1
        if (!result.success && granted > 1) {
          // Fewer than a lease left in the window: ask for just this request.
          result = await take(id, 1, ctx)
          granted = 1
        }
        if (result.success) {
          note(id, result, ctx.now)
          count(id, granted, result.reset, ctx.now)
        }
        if (!result.success) {
          // A lease another request of this isolate took meanwhile holds units Redis counted:
          // they are this isolate's to spend, not a reason to refuse.
          const arrived = leases.get(id, ctx.now)
          if (arrived && arrived.value.remaining > 0) return fromLease(id, arrived, ctx.now)
        }
        let refund = result.success ? refundGlobal(id, result.reset) : NOTHING_TO_REFUND
        if (result.success && granted > 1) {
          const held: Lease = { remaining: granted - 1 }
          // A lease never outlives its window (nor is one kept that has already run out).
          if (leases.set(id, held, { now: ctx.now, ttlMs: result.reset - ctx.now })) {
            refund = refundToLease(id, held)
          }
        }
        return {
          allowed: result.success,
          limit: spec.limit,
          remaining: result.success ? Math.max(0, remainingFor(id, ctx.now)) : 0,
          resetAt: result.reset,
          refund,
        }
      } catch (err) {
        options.onRedisError?.(err)
        return fromLocal(id, ctx.now, taken.get(id, ctx.now)?.value)
      } finally {
        if (leader) leasing.delete(id)
      }
    },
  }
}

/** A refund that acts only the first time it is called. */
function once(refund: (ctx: LimitContext) => Promise<void>): (ctx: LimitContext) => Promise<void> {
  let done = false
  return async (ctx) => {
    if (done) return
    done = true
    await refund(ctx)
  }
}
