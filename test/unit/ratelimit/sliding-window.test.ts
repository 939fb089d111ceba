import { expect, test } from 'vitest'
import { SlidingWindowLimiter } from '../../../src/ratelimit/sliding-window.ts'

const WINDOW = 60_000
const start = 120_000 * 1000 // a window boundary

test('a refund gives a counted request back within its window, and only there', () => {
  const limiter = new SlidingWindowLimiter({ limit: 2, windowMs: WINDOW }, 100)
  expect(limiter.consume('a', start).allowed).toBe(true)
  expect(limiter.consume('a', start + 1).allowed).toBe(true)
  expect(limiter.consume('a', start + 2).allowed).toBe(false)
  limiter.refund('a', start + 1, start + 3)
  expect(limiter.consume('a', start + 4).allowed).toBe(true)
  expect(limiter.consume('a', start + 5).allowed).toBe(false)
  // Counted in one window, refunded in the next: nothing is given back.
  limiter.refund('a', start + 4, start + WINDOW + 1)
  expect(limiter.consume('a', start + WINDOW + 2).remaining).toBe(0)
})

test('refunds never make the count negative', () => {
  const limiter = new SlidingWindowLimiter({ limit: 3, windowMs: WINDOW }, 100)
  limiter.consume('a', start)
  limiter.refund('a', start, start + 1)
  limiter.refund('a', start, start + 2)
  expect(limiter.consume('a', start + 3).remaining).toBe(2)
})

test('seeded with another count (Redis’s, before it failed), a window starts from it, never lower', () => {
  const limiter = new SlidingWindowLimiter({ limit: 5, windowMs: WINDOW }, 100)
  limiter.seed('a', 4, start + WINDOW, start + 10)
  expect(limiter.consume('a', start + 11)).toMatchObject({ allowed: true, remaining: 0 })
  expect(limiter.consume('a', start + 12).allowed).toBe(false)
  // A lower count changes nothing; the seed weighs on the next window as a count would.
  limiter.seed('a', 1, start + WINDOW, start + 13)
  expect(limiter.consume('a', start + 14).allowed).toBe(false)
  expect(limiter.consume('a', start + WINDOW + WINDOW / 2).remaining).toBe(5 - 1 - 2)
})

test('a count of the window before weighs on this one as the sliding window weighs it; older ones not at all', () => {
  const limiter = new SlidingWindowLimiter({ limit: 10, windowMs: WINDOW }, 100)
  // Redis counted 10 in the window that ended at `start`; now is halfway into the next, where
  // that window still weighs 5: 5 more are allowed, not 10.
  const now = start + WINDOW / 2
  limiter.seed('a', 10, start, now)
  const allowed = Array.from({ length: 8 }, () => limiter.consume('a', now).allowed)
  expect(allowed.filter(Boolean)).toHaveLength(5)
  const fresh = new SlidingWindowLimiter({ limit: 10, windowMs: WINDOW }, 100)
  fresh.seed('b', 10, start - WINDOW, start + 1)
  expect(fresh.consume('b', start + 2).remaining).toBe(9)
})
