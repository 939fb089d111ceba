// What a request lends the upstream calls it makes. Everything that differs between workerd,
// Vercel's edge runtime and the tests reaches the code below through here or through a Clock.
import type { Trace } from './trace.ts'

/**
 * A call's scope: its request's timings, and the platform's waitUntil for work (like
 * publishing a breaker transition) that must not delay the answer.
 */
export interface CallScope {
  trace?: Trace
  defer?: (work: Promise<unknown>) => void
  /**
   * The one user a delegated token (RFC 8693: `sub` = user, `act.sub` = agent) acts for. Every
   * grant check made in this call answers "no grant" for any other user, so each service and
   * tool that checks grants serves that user only.
   */
  actingFor?: string
}

/** What both platforms' execution contexts offer for work that outlives the response. */
export interface WaitUntil {
  waitUntil(promise: Promise<unknown>): void
}
