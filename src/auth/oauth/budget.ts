// Failure budgets: how many failed attempts at a credential a client may make (CONTRACT.md
// "Rate limits": 10 per 5 minutes per (client id, address), 100 per address).
//
// An attempt is counted before its credentials are checked and the count is given back when it
// succeeds, so N guesses sent at once get exactly the budget's worth of answers and the rest
// a 429: a check that read the budget, awaited the database and only then recorded the failure
// would let every concurrent guess through. The price: at most the budget's worth of attempts
// of one client from one address can be in flight at once (the SDK sends one at a time).
import type { EventBus } from '../../kernel/events.ts'
import type { CallScope } from '../../kernel/scope.ts'
import { rateLimited } from '../../ratelimit/answers.ts'
import type { LimitDecision, LimitTicket } from '../../ratelimit/limiter.ts'
import type { AuthState } from '../state.ts'

export interface FailureBudget {
  /** The tighter of the two budgets, this attempt counted: for the RateLimit headers. */
  readonly decision: LimitDecision
  /** The attempt did not fail (or failed through no fault of the client): uncount it. */
  refund(): Promise<void>
}

export interface BudgetDeps {
  auth: Pick<AuthState, 'limits'>
  clock: { now(): number }
  events: EventBus
}

/**
 * Counts an attempt against the per-(client, address) budget (when `clientKey` names the
 * client: an agent id, or a route's own name that no agent id can take) and the per-address
 * one. Throws a 429 problem, with nothing left counted, when either is spent.
 */
export async function spendFailureBudget(
  deps: BudgetDeps,
  attempt: { clientKey: string | undefined; address: string },
  scope: CallScope,
): Promise<FailureBudget> {
  const { limits } = deps.auth
  const { clientKey, address } = attempt
  const now = deps.clock.now()
  const ctx = { now, ...scope }
  const [perClient, perAddress] = await Promise.all([
    clientKey ? limits.tokenFailuresPerAgent.consume(`${clientKey}|${address}`, ctx) : undefined,
    limits.tokenFailuresPerAddress.consume(address, ctx),
  ])
  const tickets = [perClient, perAddress].filter((t): t is LimitTicket => t !== undefined)
  const refund = async () => {
    await Promise.all(tickets.map((t) => t.refund({ now: deps.clock.now(), ...scope })))
  }
  const blocked = tickets.find((t) => !t.allowed)
  if (blocked) {
    await refund() // the other budget's count: this attempt is refused, not tried
    deps.events.emit({ type: 'ratelimit.limited', limiter: 'token-failures' })
    throw rateLimited(blocked, now, 'Too many failed attempts; retry after the reset')
  }
  const decision = tickets.reduce((a, b) => (b.remaining < a.remaining ? b : a))
  return { decision, refund }
}

/**
 * Whether an attempt that ended with `status` failed by the client's fault (kept in the
 * budget): a 4xx but the 429 of a limit; a 5xx or a success is given back.
 */
export function countsAgainstBudget(status: number): boolean {
  return status >= 400 && status < 500 && status !== 429
}
