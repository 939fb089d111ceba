// Failure budgets: how many failed attempts at a credential a client may make (CONTRACT.md
// "Rate limits": 10 per 5 minutes per (client id, address), 100 per address).
//
// An attempt is counted before its credentials are checked and the count is given back when it
// succeeds, so N guesses sent at once get exactly the budget's worth of answers and the rest
// a 429: a check that read the budget, awaited the database and only then recorded the failure
// would let every concurrent guess through. The price: at most the budget's worth of attempts
// of one client from one address can be in flight at once (the SDK sends one at a time).
import type { Context } from 'hono'
import type { LimitDecision, LimitTicket } from '../ratelimit/limiter.ts'
import { rateLimited } from './auth.ts'
import type { AppEnv } from './context.ts'
import { clientAddress, requestScope } from './scope.ts'

export interface FailureBudget {
  /** The tighter of the two budgets, this attempt counted: for the RateLimit headers. */
  readonly decision: LimitDecision
  /** The attempt did not fail (or failed through no fault of the client): uncount it. */
  refund(): Promise<void>
}

/**
 * Counts an attempt against the per-(client, address) budget (when `clientKey` names the
 * client: an agent id, or a route's own name that no agent id can take) and the per-address
 * one. Throws a 429 problem, with nothing left counted, when either is spent.
 */
export async function spendFailureBudget(
  c: Context<AppEnv>,
  clientKey: string | undefined,
): Promise<FailureBudget> {
  const services = c.get('services')
  const { limits } = services.auth
  const now = services.clock.now()
  const address = clientAddress(c.req.raw.headers, services.platform)
  const ctx = { now, ...requestScope(c) }
  const [perClient, perAddress] = await Promise.all([
    clientKey ? limits.tokenFailuresPerAgent.consume(`${clientKey}|${address}`, ctx) : undefined,
    limits.tokenFailuresPerAddress.consume(address, ctx),
  ])
  const tickets = [perClient, perAddress].filter((t): t is LimitTicket => t !== undefined)
  const refund = async () => {
    await Promise.all(
      tickets.map((t) => t.refund({ now: services.clock.now(), ...requestScope(c) })),
    )
  }
  const blocked = tickets.find((t) => !t.allowed)
  if (blocked) {
    await refund() // the other budget's count: this attempt is refused, not tried
    services.events.emit({ type: 'ratelimit.limited', limiter: 'token-failures' })
    throw rateLimited(blocked, now, 'Too many failed attempts; retry after the reset')
  }
  const decision = tickets.reduce((a, b) => (b.remaining < a.remaining ? b : a))
  return { decision, refund }
}
