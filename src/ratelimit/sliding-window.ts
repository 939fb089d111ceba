// A per-isolate sliding-window limiter (the same approximation @upstash/ratelimit's
// slidingWindow uses: this window's count plus the previous window's, weighted by how much of
// it still overlaps). Pure: state in a bounded LRU, time passed in.
import { BoundedLru } from '../cache/lru.ts'
import type { LimitDecision, LimitSpec } from './types.ts'

interface WindowState {
  start: number
  current: number
  previous: number
}

export class SlidingWindowLimiter {
  readonly #spec: LimitSpec
  readonly #state: BoundedLru<string, WindowState>

  constructor(spec: LimitSpec, maxIdentifiers: number) {
    this.#spec = spec
    this.#state = new BoundedLru({ maxEntries: maxIdentifiers })
  }

  /** Counts `cost` against `id` if that stays within the limit. */
  consume(id: string, now: number, cost = 1): LimitDecision {
    const stored = this.#state.get(id, now)?.value
    const state = this.#current(stored, now)
    const used = this.#used(state, now)
    const allowed = used + cost <= this.#spec.limit
    if (allowed) state.current += cost
    // The same window's state was updated in place; a new one must be stored.
    if (state !== stored) this.#store(id, state, now)
    return this.#decision(allowed, allowed ? used + cost : used, state)
  }

  /**
   * Makes `id` count at least `used` in the window ending at `windowEnd` (ms), when that is the
   * window holding `now` or the one before, which still weighs on it: what another count,
   * Redis's, had reached. A fallback taking over then starts from there, not from zero.
   */
  seed(id: string, used: number, windowEnd: number, now: number): void {
    const stored = this.#state.get(id, now)?.value
    const state = this.#current(stored, now)
    const { windowMs } = this.#spec
    if (windowEnd === state.start + windowMs) {
      const short = used - this.#used(state, now)
      if (short > 0) state.current += short
    } else if (windowEnd === state.start) {
      state.previous = Math.max(state.previous, used)
    } else {
      return
    }
    if (state !== stored) this.#store(id, state, now)
  }

  /**
   * Gives back `cost` counted at `countedAt` (a request that turned out not to count). Only
   * within the window it was counted in: a window later its weight has begun to fade, and
   * taking it off the new window would hand out more than the limit.
   */
  refund(id: string, countedAt: number, now: number, cost = 1): void {
    const state = this.#state.get(id, now)?.value
    const start = now - (now % this.#spec.windowMs)
    if (!state || state.start !== start || countedAt < start) return
    state.current = Math.max(0, state.current - cost)
  }

  #current(state: WindowState | undefined, now: number): WindowState {
    const { windowMs } = this.#spec
    const start = now - (now % windowMs)
    if (!state) return { start, current: 0, previous: 0 }
    if (state.start === start) return state
    // Moved on: one window later the old count becomes "previous"; further, both are gone.
    return { start, current: 0, previous: state.start === start - windowMs ? state.current : 0 }
  }

  #used(state: WindowState, now: number): number {
    const overlap = 1 - (now - state.start) / this.#spec.windowMs
    return state.current + Math.floor(state.previous * overlap)
  }

  #store(id: string, state: WindowState, now: number): void {
    // Kept until the window after this one ends, when it can no longer weigh on anything.
    this.#state.set(id, state, { now, ttlMs: state.start + 2 * this.#spec.windowMs - now })
  }

  #decision(allowed: boolean, used: number, state: WindowState): LimitDecision {
    const { limit, windowMs } = this.#spec
    return {
      allowed,
      limit,
      remaining: Math.max(0, limit - used),
      resetAt: state.start + windowMs,
    }
  }
}
