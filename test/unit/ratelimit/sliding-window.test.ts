import { expect, test } from 'vitest'
import { type BaseCount, SlidingWindowLimiter } from '../../../src/ratelimit/sliding-window.ts'

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

test('on top of a base count (what Redis counted before it failed): its window, and the one before, weighed as a sliding window weighs them', () => {
  const limit = (n: number) => new SlidingWindowLimiter({ limit: n, windowMs: WINDOW }, 100)
  const allowed = (l: SlidingWindowLimiter, now: number, base: BaseCount, tries = 12) =>
    Array.from({ length: tries }, () => l.consume('a', now, 1, base).allowed).filter(Boolean).length
  // Redis took 4 of 5 in this window: one more.
  const five = limit(5)
  expect(
    five.consume('a', start + 11, 1, { windowEnd: start + WINDOW, current: 4, previous: 0 }),
  ).toMatchObject({ allowed: true, remaining: 0 })
  expect(
    five.consume('a', start + 12, 1, { windowEnd: start + WINDOW, current: 4, previous: 0 })
      .allowed,
  ).toBe(false)
  // 10 in the window before, halfway into this one: it weighs 5 …
  expect(
    allowed(limit(10), start + WINDOW / 2, { windowEnd: start + WINDOW, current: 0, previous: 10 }),
  ).toBe(5)
  // … the same when the base's own window has ended and this is the next one …
  expect(
    allowed(limit(10), start + WINDOW + WINDOW / 2, {
      windowEnd: start + WINDOW,
      current: 10,
      previous: 7,
    }),
  ).toBe(5)
  // … and less as the window goes on (never more refused than Redis would refuse).
  expect(
    allowed(limit(10), start + (WINDOW * 3) / 4, {
      windowEnd: start + WINDOW,
      current: 0,
      previous: 10,
    }),
  ).toBe(8)
  // Older than the window before: nothing.
  expect(
    allowed(limit(10), start + 2 * WINDOW + 1, {
      windowEnd: start + WINDOW,
      current: 10,
      previous: 10,
    }),
  ).toBe(10)
})

test('a request that started in the window before the stored one counts in the stored one, never resetting it', () => {
  const limiter = new SlidingWindowLimiter({ limit: 5, windowMs: WINDOW }, 100)
  for (let i = 0; i < 3; i++) limiter.consume('a', start + WINDOW + 10)
  // Its Redis call timed out across the boundary: it started 100 ms before this window.
  expect(limiter.consume('a', start + WINDOW - 100)).toMatchObject({ allowed: true, remaining: 1 })
  expect(limiter.consume('a', start + WINDOW + 20).allowed).toBe(true)
  expect(limiter.consume('a', start + WINDOW + 30).allowed).toBe(false)
})

test('Redis’s units and the fallback’s of one window round down together, as Redis rounds its count', () => {
  const limiter = new SlidingWindowLimiter({ limit: 10, windowMs: WINDOW }, 100)
  const base: BaseCount = { windowEnd: start + WINDOW, current: 1, previous: 0 }
  expect(limiter.consume('a', start + 10, 1, base).allowed).toBe(true)
  // A twentieth into the next window those 2 weigh floor(1.9) = 1, not floor(0.95) twice = 0.
  const now = start + WINDOW + WINDOW / 20
  const allowed = Array.from({ length: 12 }, () => limiter.consume('a', now, 1, base).allowed)
  expect(allowed.filter(Boolean)).toHaveLength(9)
})
