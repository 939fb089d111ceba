// Retries with full-jitter backoff inside a budget, on a fake clock and a recording sleep.
import fc from 'fast-check'
import { describe, expect, test } from 'vitest'
import { CircuitOpenError } from '../../../src/resilience/policy.ts'
import { type RetryOptions, retry } from '../../../src/resilience/retry.ts'
import { FakeClock } from './fakes.ts'

const T0 = 1_000_000

/** A fake clock, a sleep that advances it (by `overshoot` more than asked), random values. */
function harness(randoms: number[] = [], overshoot = 0) {
  const clock = new FakeClock(T0)
  const delays: number[] = []
  let r = 0
  const options = {
    now: clock.now,
    random: () => randoms[r++ % Math.max(1, randoms.length)] ?? 0.5,
    sleep: async (ms: number) => {
      delays.push(ms)
      clock.advance(ms + overshoot)
    },
  } satisfies Partial<RetryOptions>
  return { clock, delays, options }
}

class Blip extends Error {}

describe('retry', () => {
  test('a first success is returned at once', async () => {
    const { delays, options } = harness()
    const calls: number[] = []
    const result = await retry(
      async (attempt) => {
        calls.push(attempt)
        return 'row'
      },
      { ...options, attempts: 3, baseDelayMs: 100, budgetMs: 1000 },
    )
    expect(result).toBe('row')
    expect(calls).toEqual([1])
    expect(delays).toEqual([])
  })

  test('attempts are bounded, numbered from 1, and the last error is thrown', async () => {
    const { delays, options } = harness([0.5])
    const calls: number[] = []
    const errors: Error[] = []
    const call = retry(
      async (attempt) => {
        calls.push(attempt)
        const err = new Blip(`attempt ${attempt}`)
        errors.push(err)
        throw err
      },
      { ...options, attempts: 4, baseDelayMs: 100, budgetMs: 60_000 },
    )
    const thrown = await call.catch((e: unknown) => e)
    expect(errors).toHaveLength(4)
    expect(thrown).toBe(errors[3])
    expect(calls).toEqual([1, 2, 3, 4])
    expect(delays).toEqual([50, 100, 200])
  })

  test('a later success ends the retries', async () => {
    const { delays, options } = harness([1])
    const result = await retry(
      async (attempt) => {
        if (attempt < 3) throw new Blip('blip')
        return attempt
      },
      { ...options, attempts: 5, baseDelayMs: 10, budgetMs: 60_000 },
    )
    expect(result).toBe(3)
    expect(delays).toEqual([10, 20])
  })

  test('full jitter: each delay is random() × baseDelayMs × 2^(attempt − 1), rounded', async () => {
    const { delays, options } = harness([0, 0.25, 0.999, 0.5])
    await expect(
      retry(
        async () => {
          throw new Blip('x')
        },
        { ...options, attempts: 5, baseDelayMs: 100, budgetMs: 60_000 },
      ),
    ).rejects.toThrow('x')
    expect(delays).toEqual([0, 50, 400, 400])
  })

  test('no attempt starts once the budget would be spent', async () => {
    const { clock, delays, options } = harness([1])
    const starts: number[] = []
    const call = retry(
      async () => {
        starts.push(clock.now() - T0)
        clock.advance(30) // each attempt takes 30 ms
        throw new Blip('slow')
      },
      { ...options, attempts: 10, baseDelayMs: 100, budgetMs: 500 },
    )
    await expect(call).rejects.toThrow('slow')
    // 0 → fails at 30, +100 → 130 → fails at 160, +200 → 360 → fails at 390: +400 > 500
    expect(starts).toEqual([0, 130, 360])
    expect(delays).toEqual([100, 200])
  })

  test('an open circuit is never retried, whatever retryable says', async () => {
    const { delays, options } = harness()
    let calls = 0
    const open = new CircuitOpenError('neon', T0 + 1000)
    const call = retry(
      async () => {
        calls++
        throw open
      },
      { ...options, attempts: 5, baseDelayMs: 10, budgetMs: 60_000, retryable: () => true },
    )
    await expect(call).rejects.toBe(open)
    expect(calls).toBe(1)
    expect(delays).toEqual([])
  })

  test('an open circuit on a later attempt stops the retries there', async () => {
    const { options } = harness()
    const calls: number[] = []
    const call = retry(
      async (attempt) => {
        calls.push(attempt)
        throw attempt === 1 ? new Blip('blip') : new CircuitOpenError('neon', T0)
      },
      { ...options, attempts: 5, baseDelayMs: 10, budgetMs: 60_000 },
    )
    await expect(call).rejects.toBeInstanceOf(CircuitOpenError)
    expect(calls).toEqual([1, 2])
  })

  test('retryable saying no stops at once, and sees the error', async () => {
    const { delays, options } = harness()
    const seen: unknown[] = []
    const constraint = new Error('duplicate key')
    const call = retry(
      async () => {
        throw constraint
      },
      {
        ...options,
        attempts: 5,
        baseDelayMs: 10,
        budgetMs: 60_000,
        retryable: (err) => {
          seen.push(err)
          return false
        },
      },
    )
    await expect(call).rejects.toBe(constraint)
    expect(seen).toEqual([constraint])
    expect(delays).toEqual([])
  })

  test('the default sleep really waits', async () => {
    const started = Date.now()
    let calls = 0
    const result = await retry(
      async () => {
        if (++calls === 1) throw new Blip('once')
        return 'ok'
      },
      { attempts: 2, baseDelayMs: 20, budgetMs: 10_000, now: Date.now, random: () => 1 },
    )
    expect(result).toBe('ok')
    expect(Date.now() - started).toBeGreaterThanOrEqual(15)
  })

  test('property: bounded attempts, full-jitter delays, budget kept, exact stopping rule', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 6 }), // attempts
        fc.integer({ min: 0, max: 500 }), // baseDelayMs
        fc.integer({ min: 1, max: 5000 }), // budgetMs
        fc.array(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), {
          minLength: 6,
          maxLength: 6,
        }),
        fc.array(fc.integer({ min: 0, max: 800 }), { minLength: 6, maxLength: 6 }), // durations
        fc.integer({ min: 1, max: 7 }), // the attempt that succeeds (7: none)
        async (attempts, baseDelayMs, budgetMs, randoms, durations, succeedsAt) => {
          const { clock, delays, options } = harness(randoms)
          const starts: number[] = []
          const outcome = await retry(
            async (attempt) => {
              starts.push(clock.now() - T0)
              clock.advance(durations[attempt - 1] ?? 0)
              if (attempt >= succeedsAt) return attempt
              throw new Blip(`attempt ${attempt}`)
            },
            { ...options, attempts, baseDelayMs, budgetMs },
          ).then(
            (value) => ({ value }),
            (error: unknown) => ({ error }),
          )

          expect(starts.length).toBeLessThanOrEqual(attempts)
          expect(starts[0]).toBe(0)
          for (const start of starts.slice(1)) expect(start).toBeLessThan(budgetMs)
          expect(delays).toHaveLength(starts.length - 1)
          delays.forEach((delay, i) => {
            const cap = baseDelayMs * 2 ** i
            expect(delay).toBe(Math.round(randoms[i]! * cap))
            expect(delay).toBeGreaterThanOrEqual(0)
            expect(delay).toBeLessThanOrEqual(cap)
          })

          const n = starts.length
          if ('value' in outcome) {
            expect(outcome.value).toBe(n)
            expect(n).toBe(succeedsAt)
          } else {
            expect((outcome.error as Error).message).toBe(`attempt ${n}`)
            if (n < attempts) {
              // it stopped early only because the next attempt would start past the budget
              const ended = starts[n - 1]! + durations[n - 1]!
              const next = Math.round(randoms[n - 1]! * baseDelayMs * 2 ** (n - 1))
              expect(ended + next).toBeGreaterThanOrEqual(budgetMs)
            }
          }
        },
      ),
      { numRuns: 300 },
    )
  })

  // Was a minor bug (fixed): the budget was checked only before the sleep, assuming it lasts
  // exactly `delay`. Timers fire late (busy event loop, coarse timers on edge runtimes); the
  // budget is now checked again after the sleep, and the last error is thrown.
  test('no attempt starts past the budget even when the sleep overruns', async () => {
    const { clock, options } = harness([1], 300) // every sleep lasts 300 ms longer
    const starts: number[] = []
    const call = retry(
      async () => {
        starts.push(clock.now() - T0)
        throw new Blip('x')
      },
      { ...options, attempts: 3, baseDelayMs: 100, budgetMs: 250 },
    )
    await expect(call).rejects.toThrow('x')
    for (const start of starts) expect(start).toBeLessThan(250)
    expect(starts).toEqual([0]) // slept 100 + 300 ms: the budget was spent by the end
  })
})
