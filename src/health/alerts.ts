// Alerts: declared rules, each with a threshold, a minimum sample size and a cooldown. An
// alert fires once, stays active (same id, same since) while its condition holds, resolves
// when it clears, and cannot fire again within its cooldown after resolving. Pure: the
// engine is given `now` and the facts, and keeps only each rule's state.
import type { BreakerReport } from '../resilience/policy.ts'
import type { WindowStats } from './window.ts'

export type Severity = 'warning' | 'critical'

export interface AlertFacts {
  now: number
  lastMinute: WindowStats
  breakers: readonly Pick<BreakerReport, 'name' | 'state' | 'since'>[]
  /** Age (ms) of the oldest buffered progress update; null when none or unknown. */
  oldestBufferedAgeMs: number | null
  /** Progress updates held as dead letters; null when unknown or not buffered. */
  deadLetters?: number | null
  configurationFailing: boolean
}

export interface AlertRule {
  id: string
  severity: Severity
  cooldownMs: number
  /** The alert's message when its condition holds now, else null. */
  check(facts: AlertFacts): string | null
}

export interface Alert {
  id: string
  severity: Severity
  message: string
  since: string
}

const MINUTE = 60_000

export const MIN_REQUESTS_FOR_RATES = 20
export const ERROR_RATE_PERCENT = 5
export const P95_LIMIT_MS = 1000
export const BACKLOG_LIMIT_MS = 30_000

export const ALERT_RULES: readonly AlertRule[] = [
  {
    id: 'high_error_rate',
    severity: 'critical',
    cooldownMs: 5 * MINUTE,
    check: ({ lastMinute: m }) =>
      m.requests >= MIN_REQUESTS_FOR_RATES && m.errorRate > ERROR_RATE_PERCENT
        ? `${m.errorRate} % of ${m.requests} requests failed with a 5xx in the last minute (threshold ${ERROR_RATE_PERCENT} %)`
        : null,
  },
  {
    id: 'slow_responses',
    severity: 'warning',
    cooldownMs: 5 * MINUTE,
    check: ({ lastMinute: m }) =>
      m.requests >= MIN_REQUESTS_FOR_RATES && m.p95 !== null && m.p95 > P95_LIMIT_MS
        ? `p95 response time is ${m.p95} ms over the last minute (threshold ${P95_LIMIT_MS} ms)`
        : null,
  },
  ...(['neon', 'redis'] as const).map(
    (name): AlertRule => ({
      id: `circuit_open_${name}`,
      severity: name === 'neon' ? 'critical' : 'warning',
      cooldownMs: MINUTE,
      check: ({ breakers }) => {
        const b = breakers.find((x) => x.name === name)
        return b && b.state !== 'CLOSED'
          ? `The ${name} circuit is ${b.state.toLowerCase()} since ${b.since}`
          : null
      },
    }),
  ),
  {
    id: 'progress_backlog',
    severity: 'warning',
    cooldownMs: 5 * MINUTE,
    check: ({ oldestBufferedAgeMs: age }) =>
      age !== null && age > BACKLOG_LIMIT_MS
        ? `The oldest buffered progress update is ${Math.round(age / 1000)} s old (threshold ${BACKLOG_LIMIT_MS / 1000} s)`
        : null,
  },
  {
    // Accepted updates a store refused: kept, but not applied until an operator acts.
    id: 'progress_dead_letters',
    severity: 'critical',
    cooldownMs: 0,
    check: ({ deadLetters }) =>
      deadLetters != null && deadLetters > 0
        ? `${deadLetters} accepted progress update(s) are dead letters: a store refused them at flush time`
        : null,
  },
  {
    id: 'configuration',
    severity: 'critical',
    cooldownMs: MINUTE,
    check: ({ configurationFailing }) =>
      configurationFailing
        ? 'The configuration is not valid for this environment; tokens are refused'
        : null,
  },
]

interface RuleState {
  activeSince: number | null
  resolvedAt: number | null
}

export class AlertEngine {
  readonly #rules: readonly AlertRule[]
  readonly #state = new Map<string, RuleState>()

  constructor(rules: readonly AlertRule[] = ALERT_RULES) {
    this.#rules = rules
  }

  /** Applies the facts of `now` and returns the alerts active after that. */
  evaluate(facts: AlertFacts): Alert[] {
    const active: Alert[] = []
    for (const rule of this.#rules) {
      let state = this.#state.get(rule.id)
      if (!state) {
        state = { activeSince: null, resolvedAt: null }
        this.#state.set(rule.id, state)
      }
      const message = rule.check(facts)
      if (message === null) {
        if (state.activeSince !== null) {
          state.activeSince = null
          state.resolvedAt = facts.now
        }
        continue
      }
      if (state.activeSince === null) {
        const cooling = state.resolvedAt !== null && facts.now - state.resolvedAt < rule.cooldownMs
        if (cooling) continue // it just resolved: do not flap
        state.activeSince = facts.now
      }
      active.push({
        id: rule.id,
        severity: rule.severity,
        message,
        since: new Date(state.activeSince).toISOString(),
      })
    }
    return active
  }
}
