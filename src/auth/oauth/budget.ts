// Failure budgets: how many failed attempts at a credential a client may make (CONTRACT.md
// "Rate limits": 10 per 5 minutes per (client id, address), 100 per address).
//
// An attempt is counted before its credentials are checked and the count is given back when it
// succeeds, so N guesses sent at once get exactly the budget's worth of answers and the rest
// a 429: a check that read the budget, awaited the database and only then recorded the failure
// would let every concurrent guess through. The price: at most the budget's worth of attempts
// of one client from one address can be in flight at once (the SDK sends one at a time). A
// refusal while this isolate still has attempts of that budget in flight may be theirs, not
// failures' (a burst of correct requests): it says so and asks for a retry in a second rather
// than after the window's reset — still without checking anything.
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
  /** The attempt failed by the client's fault: its count stays; it is no longer in flight. */
  settle(): void
}

export interface BudgetDeps {
  auth: Pick<AuthState, 'limits' | 'attemptsInFlight'>
  clock: { now(): number }
  events: EventBus
}

/** How long an attempt is taken to be in flight at most, should it never be settled. */
const IN_FLIGHT_MS = 60_000

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
  const { limits, attemptsInFlight } = deps.auth
  const { clientKey, address } = attempt
  const now = deps.clock.now()
  const ctx = { now, ...scope }
  const clientHeld = clientKey ? `agent|${clientKey}|${address}` : undefined
  const addressHeld = `address|${address}`
  // In flight from before its count is asked for (answers to concurrent counts arrive in any
  // order) until it is settled: kept, given back, or refused.
  const held = [clientHeld, addressHeld]
    .filter((key): key is string => key !== undefined)
    .map((key) => ({ key, counter: holdAttempt(attemptsInFlight, key, now) }))
  let settled = false
  const settle = () => {
    if (settled) return
    settled = true
    for (const { key, counter } of held) releaseAttempt(attemptsInFlight, key, counter)
  }
  const [perClient, perAddress] = await Promise.all([
    clientKey ? limits.tokenFailuresPerAgent.consume(`${clientKey}|${address}`, ctx) : undefined,
    limits.tokenFailuresPerAddress.consume(address, ctx),
  ])
  const counted = [
    { ticket: perClient, key: clientHeld },
    { ticket: perAddress, key: addressHeld },
  ].filter(
    (c): c is { ticket: LimitTicket; key: string } => c.ticket !== undefined && c.key !== undefined,
  )
  const giveBack = async () => {
    await Promise.all(counted.map((c) => c.ticket.refund({ now: deps.clock.now(), ...scope })))
  }
  const blocked = counted.find((c) => !c.ticket.allowed)
  if (blocked) {
    settle()
    // Others still in flight here may all succeed and give their counts back.
    const others = attemptsInFlight.get(blocked.key, deps.clock.now())?.value.n ?? 0
    await giveBack() // the other budget's count: this attempt is refused, not tried
    deps.events.emit({ type: 'ratelimit.limited', limiter: 'token-failures' })
    if (others > 0) {
      throw rateLimited(blocked.ticket, now, 'Too many attempts at once; retry in a second', 1)
    }
    throw rateLimited(blocked.ticket, now, 'Too many failed attempts; retry after the reset')
  }
  const decision = counted
    .map((c) => c.ticket)
    .reduce((a, b) => (b.remaining < a.remaining ? b : a))
  return {
    decision,
    settle,
    refund: async () => {
      // Still in flight until its count is back: a refusal meanwhile is told to retry soon.
      try {
        await giveBack()
      } finally {
        settle()
      }
    },
  }
}

/**
 * Counts one attempt in flight under `key` and returns the counter it went into. A counter
 * keeps its first attempt's expiry: one never settled (a request cancelled mid-check) leaves
 * nothing behind past it, however many follow; after it, a new counter starts.
 */
function holdAttempt(
  inFlight: AuthState['attemptsInFlight'],
  key: string,
  now: number,
): { n: number } {
  const entry = inFlight.get(key, now)
  if (entry) {
    entry.value.n++
    return entry.value
  }
  const counter = { n: 1 }
  inFlight.set(key, counter, { now, ttlMs: IN_FLIGHT_MS })
  return counter
}

/** Takes an attempt out of the counter it went into; a counter since replaced is left alone. */
function releaseAttempt(
  inFlight: AuthState['attemptsInFlight'],
  key: string,
  counter: { n: number },
): void {
  counter.n--
  if (counter.n <= 0 && inFlight.peek(key)?.value === counter) inFlight.delete(key)
}

/**
 * Whether an attempt that ended with `status` failed by the client's fault (kept in the
 * budget): a 4xx but the 429 of a limit; a 5xx or a success is given back.
 */
export function countsAgainstBudget(status: number): boolean {
  return status >= 400 && status < 500 && status !== 429
}
