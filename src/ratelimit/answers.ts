// What a limit decision looks like on the wire: the RateLimit-* headers
// (draft-ietf-httpapi-ratelimit-headers) and the 429 problem with Retry-After.
import { ProblemError } from '../contract/problem.ts'
import type { LimitDecision } from './types.ts'

/** `RateLimit-Limit`, `-Remaining` and `-Reset` (seconds until the window resets). */
export function rateLimitHeaders(decision: LimitDecision, now: number): Record<string, string> {
  const resetSeconds = Math.max(0, Math.ceil((decision.resetAt - now) / 1000))
  return {
    'RateLimit-Limit': String(decision.limit),
    'RateLimit-Remaining': String(decision.remaining),
    'RateLimit-Reset': String(resetSeconds),
  }
}

/** The 429 `rate_limited` problem for a spent limit, its headers and Retry-After (≥ 1 s). */
export function rateLimited(
  decision: LimitDecision,
  now: number,
  detail: string,
  /** Seconds until a retry may succeed, when sooner than the window's reset. */
  retryAfter?: number,
): ProblemError {
  const headers = rateLimitHeaders(decision, now)
  const reset = Math.max(1, Number(headers['RateLimit-Reset']))
  return new ProblemError({
    status: 429,
    code: 'rate_limited',
    detail,
    headers: { ...headers, 'Retry-After': String(Math.min(reset, retryAfter ?? reset)) },
  })
}
