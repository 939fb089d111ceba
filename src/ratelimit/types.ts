// Shared shapes of the rate limiters.

export interface LimitSpec {
  /** Requests allowed per window. */
  limit: number
  windowMs: number
}

export interface LimitDecision {
  allowed: boolean
  limit: number
  remaining: number
  /** When the budget is next restored (ms since epoch). */
  resetAt: number
}
