// The failure budget's refusals, with the limiters' answers in an order the test chooses and
// the clock injected: a refusal while attempts of that budget are in flight here (their
// counts asked for, or being given back) is told to retry in a second; once none is, it is
// told the window's reset. Nothing here decides what is checked: the counts do.
import { describe, expect, test } from 'vitest'
import { spendFailureBudget } from '../../../src/auth/oauth/budget.ts'
import { BoundedLru } from '../../../src/cache/lru.ts'
import { ProblemError } from '../../../src/contract/problem.ts'
import { EventBus } from '../../../src/kernel/events.ts'
import type { Limiter, LimitTicket } from '../../../src/ratelimit/limiter.ts'

const WINDOW_MS = 300_000

/** A limiter whose answers wait until the test releases them, in any order. */
function heldLimiter(limit: number, holdRefunds: boolean) {
  let used = 0
  const waiting: (() => void)[] = []
  const refunds: (() => void)[] = []
  const limiter: Limiter = {
    spec: { limit, windowMs: WINDOW_MS },
    consume: async (_id, ctx) => {
      const allowed = used < limit // counted at once, in call order, as Redis does
      if (allowed) used++
      await new Promise<void>((resolve) => waiting.push(resolve))
      const ticket: LimitTicket = {
        allowed,
        limit,
        remaining: Math.max(0, limit - used),
        resetAt: ctx.now + WINDOW_MS,
        refund: allowed
          ? async () => {
              if (holdRefunds) await new Promise<void>((resolve) => refunds.push(resolve))
              used--
            }
          : async () => {},
      }
      return ticket
    },
  }
  return {
    limiter,
    /** Releases the answers of the consume calls made so far, last first. */
    answerInReverse: () => {
      for (const release of waiting.splice(0).reverse()) release()
    },
    answerRefunds: () => {
      for (const release of refunds.splice(0)) release()
    },
  }
}

function budget(limit: number) {
  const clock = { t: Date.UTC(2026, 10, 30, 12) }
  const perAgent = heldLimiter(limit, true)
  const perAddress = heldLimiter(1000, false)
  const deps = {
    auth: {
      limits: {
        tokenFailuresPerAgent: perAgent.limiter,
        tokenFailuresPerAddress: perAddress.limiter,
        requestsPerAgent: perAddress.limiter,
      },
      attemptsInFlight: new BoundedLru<string, { n: number }>({ maxEntries: 100 }),
    },
    clock: { now: () => clock.t },
    events: new EventBus(),
  }
  const spend = () => spendFailureBudget(deps, { clientKey: 'agent-1', address: '192.0.2.1' }, {})
  const answerAll = () => {
    perAgent.answerInReverse()
    perAddress.answerInReverse()
  }
  return { clock, spend, answerAll, perAgent, perAddress }
}

const retryAfter = (p: Promise<unknown>) =>
  p.then(
    () => 'allowed',
    (err: unknown) => {
      if (!(err instanceof ProblemError)) throw err
      return err.problem.headers?.['Retry-After']
    },
  )

describe('failure budget refusals', () => {
  test('a refusal answered before the allowed attempts’ answers still sees them in flight', async () => {
    const b = budget(2)
    const attempts = [b.spend(), b.spend(), b.spend()]
    b.answerAll() // the refused third is answered first
    const [one, two, three] = await Promise.all(attempts.map(retryAfter))
    expect([one, two]).toEqual(['allowed', 'allowed'])
    expect(three).toBe('1')
  })

  test('while an allowed attempt’s count is being given back, a refusal is told a second', async () => {
    const b = budget(1)
    const first = b.spend()
    b.answerAll()
    const allowed = await first
    const refunding = allowed.refund() // its give-back waits on the limiter
    const refused = b.spend()
    b.answerAll()
    expect(await retryAfter(refused)).toBe('1')
    b.perAgent.answerRefunds()
    await refunding
    // Given back and settled: the next attempt is allowed.
    const again = b.spend()
    b.answerAll()
    expect(await retryAfter(again)).toBe('allowed')
  })

  test('a kept failure, settled, leaves the window’s reset as the answer', async () => {
    const b = budget(1)
    const first = b.spend()
    b.answerAll()
    ;(await first).settle() // failed by the client's fault: its count stays
    const refused = b.spend()
    b.answerAll()
    expect(Number(await retryAfter(refused))).toBeGreaterThan(1)
  })

  test('an attempt never settled stops counting after its expiry, and a late settle leaves the next counter alone', async () => {
    const b = budget(1)
    const lost = b.spend() // allowed, then never settled (a cancelled request)
    b.answerAll()
    await lost
    b.clock.t += 61_000
    const refused = b.spend()
    b.answerAll()
    expect(Number(await retryAfter(refused))).toBeGreaterThan(1)
    // A new attempt in flight (its answer held); the old one settles late: the new one counts.
    const b2 = budget(1)
    const stale = b2.spend()
    b2.answerAll()
    const staleBudget = await stale
    b2.clock.t += 61_000
    const pending = b2.spend() // refused (the stale count stays in the limiter), held
    staleBudget.settle()
    const third = b2.spend()
    b2.answerAll()
    // Answered last first: the third, refused while `pending` is still in flight, is told a
    // second; `pending`, refused with nothing else in flight, the reset. Had the late settle
    // emptied the new counter, the third would have been alone in a fresh one: the reset.
    expect(await Promise.all([retryAfter(pending), retryAfter(third)])).toEqual(['300', '1'])
  })
})
