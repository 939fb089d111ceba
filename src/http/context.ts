// The typed Hono context every route and middleware shares.
import type { FailureBudget } from '../auth/oauth/budget.ts'
import type { Logger } from '../kernel/log.ts'
import type { Trace } from '../kernel/trace.ts'
import type { Services } from '../services.ts'

/** Response header names in lower case: one spelling, so a route's value replaces a prepared one. */
export type HeaderRecord = Record<Lowercase<string>, string>

export interface AppVariables {
  requestId: string
  /** The headers every answer of this request carries unless it sets its own (./headers.ts). */
  prepared: HeaderRecord
  /** The answer `respond` built, with the prepared headers already in it. */
  answered?: Response
  services: Services
  trace: Trace
  /** The request's logger (request id bound). */
  log: Logger
  /** The authenticated agent, once auth has run. */
  agentId?: string
  /** The user a delegated token acts for (RFC 8693 `sub`, with `act.sub` = agentId). */
  actingFor?: string
  /** The token endpoints' failure budget of this attempt, once spent. */
  failureBudget?: FailureBudget
  /** The token endpoints: the client authenticated successfully (the budget is given back). */
  clientAuthenticated?: boolean
}

export interface AppEnv {
  Bindings: Record<string, unknown>
  Variables: AppVariables
}
