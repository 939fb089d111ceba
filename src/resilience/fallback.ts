// The fallback ladder: try each rung in order and answer with the first that has a value,
// saying which rung answered and why the ones above it did not.
//
//   live → cache → stale cache → basic   (→ mock, in development only)
import type { Environment } from '../config/environment.ts'
import { CircuitOpenError } from './policy.ts'

export interface Rung<T, S extends string> {
  source: S
  /** A value, or undefined to pass to the next rung; a throw also passes, with a reason. */
  attempt: () => T | undefined | Promise<T | undefined>
}

export interface Answer<T, S extends string> {
  value: T
  source: S
  /** Why a higher rung did not answer (absent when the first rung did). */
  reason?: string
}

export class MockOutsideDevelopmentError extends Error {
  constructor(environment: Environment) {
    super(`mock data asked for in ${environment}: mock is for development only`)
    this.name = 'MockOutsideDevelopmentError'
  }
}

export async function fallbackLadder<T, S extends string>(
  rungs: readonly Rung<T, S>[],
): Promise<Answer<T, S>> {
  let reason: string | undefined
  for (const rung of rungs) {
    try {
      const value = await rung.attempt()
      if (value !== undefined)
        return reason ? { value, source: rung.source, reason } : { value, source: rung.source }
      reason ??= `${rung.source}_unavailable`
    } catch (err) {
      if (err instanceof MockOutsideDevelopmentError) throw err
      reason ??= failureReason(err)
    }
  }
  throw new Error('the fallback ladder has no rung that always answers')
}

/** A rung of mock data: refuses to exist outside development (a configuration error). */
export function mockRung<T, S extends string>(
  environment: Environment,
  source: S,
  make: () => T,
): Rung<T, S> {
  if (environment !== 'development') throw new MockOutsideDevelopmentError(environment)
  return { source, attempt: make }
}

export function failureReason(err: unknown): string {
  if (err instanceof CircuitOpenError) return 'circuit_open'
  if (
    err instanceof Error &&
    (err.name === 'TimeoutError' ||
      err.name === 'AbortError' ||
      /abort|timed? ?out/i.test(err.message))
  ) {
    return 'database_timeout'
  }
  return 'database_error'
}
