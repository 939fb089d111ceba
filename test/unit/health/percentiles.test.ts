// Percentiles from fixed histogram buckets: within one bucket of the truth, in constant memory.
import { describe, expect, test } from 'vitest'
import { BUCKET_BOUNDS_MS, bucketOf, quantile } from '../../../src/health/histogram.ts'
import { SlidingWindow } from '../../../src/health/window.ts'

/** A deterministic pseudo-random stream (mulberry32). */
function random(seed: number) {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function trueQuantile(sorted: number[], q: number): number {
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!
}

describe('percentiles', () => {
  test.each([
    [
      'log-normal around 40 ms',
      (r: () => number) =>
        Math.exp(Math.log(40) + 0.8 * Math.sqrt(-2 * Math.log(r())) * Math.cos(2 * Math.PI * r())),
    ],
    ['uniform 0–2000 ms', (r: () => number) => r() * 2000],
    [
      'bimodal: cache hits and database misses',
      (r: () => number) => (r() < 0.9 ? 1 + r() * 4 : 80 + r() * 400),
    ],
  ])('%s: p50, p95, p99 within one bucket of the true values', (_name, sample) => {
    const r = random(42)
    const window = new SlidingWindow(5 * 60_000, 10_000)
    const values: number[] = []
    const now = 1_000_000_000
    for (let i = 0; i < 50_000; i++) {
      const v = sample(r)
      values.push(v)
      window.record(now, v, false)
    }
    values.sort((a, b) => a - b)
    const stats = window.stats(now, 60_000)
    for (const [q, reported] of [
      [0.5, stats.p50],
      [0.95, stats.p95],
      [0.99, stats.p99],
    ] as const) {
      const truth = trueQuantile(values, q)
      // The reported value is the upper bound of the bucket the true value falls in.
      expect(reported).toBe(
        BUCKET_BOUNDS_MS[Math.min(bucketOf(truth), BUCKET_BOUNDS_MS.length - 1)],
      )
      expect(Math.abs(bucketOf(reported!) - bucketOf(truth))).toBeLessThanOrEqual(1)
    }
  })

  test('an empty window reports no percentiles rather than zeros', () => {
    expect(quantile(new Uint32Array(BUCKET_BOUNDS_MS.length + 1), 0.5)).toBeNull()
    expect(new SlidingWindow(60_000, 10_000).stats(0, 60_000)).toMatchObject({
      requests: 0,
      p95: null,
      mean: null,
    })
  })

  test('windows slide: old slots stop counting, 1 min and 5 min differ', () => {
    const window = new SlidingWindow(5 * 60_000, 10_000)
    const start = 10_000_000
    window.record(start, 10, true)
    window.record(start + 2 * 60_000, 20, false)
    const at = start + 2 * 60_000
    expect(window.stats(at, 60_000)).toMatchObject({ requests: 1, errors: 0 })
    expect(window.stats(at, 5 * 60_000)).toMatchObject({ requests: 2, errors: 1, errorRate: 50 })
    expect(window.stats(start + 8 * 60_000, 5 * 60_000)).toMatchObject({ requests: 0 })
  })

  test('memory stays constant over 1,000,000 recorded requests', () => {
    const window = new SlidingWindow(5 * 60_000, 10_000)
    const r = random(7)
    const footprint = () => window.shape()
    let now = 0
    window.record(now, 1, false)
    const before = footprint()
    for (let i = 0; i < 1_000_000; i++) {
      now += 1 // a million requests over 16 minutes: every slot is reused several times
      window.record(now, r() * 3000, r() < 0.01)
    }
    expect(footprint()).toEqual(before)
    expect(before).toEqual({ slots: 31, cells: 31 * (BUCKET_BOUNDS_MS.length + 1) })
    expect(window.stats(now, 5 * 60_000).requests).toBeGreaterThan(250_000)
  })
})
