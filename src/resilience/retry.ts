// Retries for idempotent reads only: a few attempts with full-jitter exponential backoff,
// inside a total time budget, and never once the circuit is open (that is the breaker's
// answer, not a blip).
import { CircuitOpenError } from './policy.ts'

export interface RetryOptions {
  /** Attempts in all, the first included. */
  attempts: number
  baseDelayMs: number
  /** No new attempt starts after this much time since the first one began. */
  budgetMs: number
  now: () => number
  random: () => number
  sleep?: (ms: number) => Promise<void>
  /** Whether the error is worth another attempt (default: anything but an open circuit). */
  retryable?: (err: unknown) => boolean
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

export async function retry<T>(
  work: (attempt: number) => Promise<T>,
  options: RetryOptions,
): Promise<T> {
  const { attempts, baseDelayMs, budgetMs, now, random, sleep = defaultSleep } = options
  const retryable = options.retryable ?? (() => true)
  const started = now()
  for (let attempt = 1; ; attempt++) {
    try {
      return await work(attempt)
    } catch (err) {
      if (attempt >= attempts || err instanceof CircuitOpenError || !retryable(err)) throw err
      // Full jitter: anywhere from 0 to the exponential step, so callers spread out.
      const delay = Math.round(random() * baseDelayMs * 2 ** (attempt - 1))
      if (now() - started + delay >= budgetMs) throw err
      await sleep(delay)
      // A timer can fire late: never start an attempt past the budget.
      if (now() - started >= budgetMs) throw err
    }
  }
}
