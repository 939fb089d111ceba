// Request statistics over sliding time windows, in fixed memory: a ring of time slots, each
// with counts and a latency histogram. Recording touches one slot; reading sums the slots
// inside the window. Time is passed in.
import { BUCKETS, bucketOf, quantile } from './histogram.ts'

export interface WindowStats {
  requests: number
  errors: number
  /** Percent of requests that ended in a 5xx. */
  errorRate: number
  p50: number | null
  p95: number | null
  p99: number | null
  /** Mean latency (ms), or null. */
  mean: number | null
}

interface Slot {
  start: number
  requests: number
  errors: number
  totalMs: number
  histogram: Uint32Array
}

export class SlidingWindow {
  readonly #slotMs: number
  readonly #slots: Slot[]

  /** Covers `spanMs` in slots of `slotMs` (e.g. 5 min in 10 s slots: 30 slots). */
  constructor(spanMs: number, slotMs: number) {
    this.#slotMs = slotMs
    const count = Math.ceil(spanMs / slotMs) + 1
    this.#slots = Array.from({ length: count }, () => ({
      start: Number.NEGATIVE_INFINITY,
      requests: 0,
      errors: 0,
      totalMs: 0,
      histogram: new Uint32Array(BUCKETS),
    }))
  }

  record(now: number, durationMs: number, error: boolean): void {
    const start = now - (now % this.#slotMs)
    const slot = this.#slots[Math.floor(now / this.#slotMs) % this.#slots.length]!
    if (slot.start !== start) {
      slot.start = start
      slot.requests = 0
      slot.errors = 0
      slot.totalMs = 0
      slot.histogram.fill(0)
    }
    slot.requests++
    if (error) slot.errors++
    slot.totalMs += durationMs
    slot.histogram[bucketOf(durationMs)]!++
  }

  /** The structure's size (slots, histogram cells): fixed at construction, whatever is recorded. */
  shape(): { slots: number; cells: number } {
    return {
      slots: this.#slots.length,
      cells: this.#slots.reduce((n, s) => n + s.histogram.length, 0),
    }
  }

  /** Statistics of the slots that started within the last `windowMs`. */
  stats(now: number, windowMs: number): WindowStats {
    const since = now - windowMs
    const histogram = new Uint32Array(BUCKETS)
    let requests = 0
    let errors = 0
    let totalMs = 0
    for (const slot of this.#slots) {
      if (slot.start <= since || slot.start > now) continue
      requests += slot.requests
      errors += slot.errors
      totalMs += slot.totalMs
      for (let i = 0; i < BUCKETS; i++) histogram[i]! += slot.histogram[i]!
    }
    return {
      requests,
      errors,
      errorRate: requests ? Math.round((errors / requests) * 10_000) / 100 : 0,
      p50: quantile(histogram, 0.5),
      p95: quantile(histogram, 0.95),
      p99: quantile(histogram, 0.99),
      mean: requests ? Math.round((totalMs / requests) * 10) / 10 : null,
    }
  }
}
