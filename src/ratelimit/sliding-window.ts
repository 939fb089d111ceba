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

/**
 * Units another count (Redis's, as this isolate took them) holds for an id: `current` in the
 * window ending at `windowEnd` (ms), `previous` in the one before it.
 */
export interface BaseCount {
  windowEnd: number
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

  /**
   * Counts `cost` against `id` if that stays within the limit, on top of `base` (what Redis
   * counted of this isolate's requests before it failed, weighed as this window weighs it).
   */
  consume(id: string, requestedAt: number, cost = 1, base?: BaseCount): LimitDecision {
    const stored = this.#state.get(id, requestedAt)?.value
    // A request that started before the window the state is in (its Redis call timed out
    // meanwhile) counts in that window: time never runs back over a newer count.
    const now = stored && requestedAt < stored.start ? stored.start : requestedAt
    const state = this.#current(stored, now)
    const used = this.#used(this.#withBase(state, base), now)
    const allowed = used + cost <= this.#spec.limit
    if (allowed) state.current += cost
    // The same window's state was updated in place; a new one must be stored.
    if (state !== stored) this.#store(id, state, now)
    return this.#decision(allowed, allowed ? used + cost : used, state)
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

  /**
   * The counts of `state`'s window and the one before with `base` added where its windows are
   * these (one floor over the sum, as Redis takes it: split, each share rounds down apart).
   */
  #withBase(state: WindowState, base: BaseCount | undefined): WindowState {
    if (!base) return state
    const { windowMs } = this.#spec
    if (base.windowEnd === state.start + windowMs) {
      return {
        start: state.start,
        current: state.current + base.current,
        previous: state.previous + base.previous,
      }
    }
    if (base.windowEnd === state.start) {
      return { ...state, previous: state.previous + base.current }
    }
    return state
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
