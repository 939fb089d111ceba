// Alert rules with fake time: firing, holding, resolving, cooldown, minimum samples, and both
// sides of every threshold.
import { describe, expect, test } from 'vitest'
import {
  ALERT_RULES,
  AlertEngine,
  type AlertFacts,
  BACKLOG_LIMIT_MS,
  ERROR_RATE_PERCENT,
  MIN_REQUESTS_FOR_RATES,
  P95_LIMIT_MS,
} from '../../../src/health/alerts.ts'
import type { WindowStats } from '../../../src/health/window.ts'

const T0 = Date.UTC(2026, 10, 26, 3, 0, 0)
const quiet: WindowStats = {
  requests: 0,
  errors: 0,
  errorRate: 0,
  p50: null,
  p95: null,
  p99: null,
  mean: null,
}

function facts(over: Partial<AlertFacts> = {}): AlertFacts {
  return {
    now: T0,
    lastMinute: quiet,
    breakers: [
      { name: 'neon', state: 'CLOSED', since: new Date(T0).toISOString() },
      { name: 'redis', state: 'CLOSED', since: new Date(T0).toISOString() },
    ],
    oldestBufferedAgeMs: null,
    configurationFailing: false,
    ...over,
  }
}

const traffic = (requests: number, errors: number, p95: number | null = 50): WindowStats => ({
  requests,
  errors,
  errorRate: requests ? Math.round((errors / requests) * 10_000) / 100 : 0,
  p50: p95,
  p95,
  p99: p95,
  mean: p95,
})

const ids = (engine: AlertEngine, f: AlertFacts) => engine.evaluate(f).map((a) => a.id)

describe('alert rules', () => {
  test('nothing fires on a quiet, healthy isolate', () => {
    expect(new AlertEngine().evaluate(facts())).toEqual([])
  })

  test('error rate: fires above 5 % with at least 20 requests, not at or below either bound', () => {
    const engine = () => new AlertEngine()
    expect(ids(engine(), facts({ lastMinute: traffic(100, 6) }))).toEqual(['high_error_rate'])
    expect(ids(engine(), facts({ lastMinute: traffic(100, 5) }))).toEqual([]) // exactly 5 %: not above
    expect(ids(engine(), facts({ lastMinute: traffic(100, 4) }))).toEqual([])
    expect(ids(engine(), facts({ lastMinute: traffic(MIN_REQUESTS_FOR_RATES, 2) }))).toEqual([
      'high_error_rate',
    ])
    expect(ids(engine(), facts({ lastMinute: traffic(MIN_REQUESTS_FOR_RATES - 1, 19) }))).toEqual(
      [],
    ) // too few samples
    expect(ERROR_RATE_PERCENT).toBe(5)
  })

  test('dead letters: critical while any exist, from the first one, and only then', () => {
    const engine = new AlertEngine()
    expect(ids(engine, facts({ deadLetters: 0 }))).toEqual([])
    expect(ids(engine, facts({ deadLetters: null }))).toEqual([])
    const [alert] = engine.evaluate(facts({ deadLetters: 1 }))
    expect(alert).toMatchObject({ id: 'progress_dead_letters', severity: 'critical' })
    expect(alert?.message).toMatch(/^1 accepted progress update/)
    // Still held a minute later: the same alert, the same since.
    expect(engine.evaluate(facts({ now: T0 + 60_000, deadLetters: 3 }))).toEqual([
      expect.objectContaining({ id: 'progress_dead_letters', since: alert?.since }),
    ])
    // Resolved when the last one is re-driven or discarded; back at once if another appears.
    expect(ids(engine, facts({ now: T0 + 61_000, deadLetters: 0 }))).toEqual([])
    expect(ids(engine, facts({ now: T0 + 62_000, deadLetters: 1 }))).toEqual([
      'progress_dead_letters',
    ])
  })

  test('p95: fires above 1 s with enough samples only', () => {
    expect(ids(new AlertEngine(), facts({ lastMinute: traffic(50, 0, 1500) }))).toEqual([
      'slow_responses',
    ])
    expect(ids(new AlertEngine(), facts({ lastMinute: traffic(50, 0, P95_LIMIT_MS) }))).toEqual([])
    expect(ids(new AlertEngine(), facts({ lastMinute: traffic(19, 0, 5000) }))).toEqual([])
  })

  test('an open circuit: neon is critical, redis a warning; half-open still counts', () => {
    const open = new AlertEngine().evaluate(
      facts({
        breakers: [
          { name: 'neon', state: 'OPEN', since: new Date(T0).toISOString() },
          { name: 'redis', state: 'HALF_OPEN', since: new Date(T0).toISOString() },
        ],
      }),
    )
    expect(open.map((a) => [a.id, a.severity])).toEqual([
      ['circuit_open_neon', 'critical'],
      ['circuit_open_redis', 'warning'],
    ])
    expect(open[0]?.message).toContain('neon circuit is open')
  })

  test('progress backlog: fires when the oldest update is older than 30 s', () => {
    expect(ids(new AlertEngine(), facts({ oldestBufferedAgeMs: BACKLOG_LIMIT_MS + 1 }))).toEqual([
      'progress_backlog',
    ])
    expect(ids(new AlertEngine(), facts({ oldestBufferedAgeMs: BACKLOG_LIMIT_MS }))).toEqual([])
    expect(ids(new AlertEngine(), facts({ oldestBufferedAgeMs: null }))).toEqual([])
  })

  test('configuration failing is critical', () => {
    expect(new AlertEngine().evaluate(facts({ configurationFailing: true }))).toEqual([
      expect.objectContaining({ id: 'configuration', severity: 'critical' }),
    ])
  })
})

describe('alert lifecycle', () => {
  const bad = traffic(100, 50)
  const good = traffic(100, 0)

  test('fires once, holds with the same since, resolves when it clears', () => {
    const engine = new AlertEngine()
    const fired = engine.evaluate(facts({ now: T0, lastMinute: bad }))
    expect(fired).toEqual([
      expect.objectContaining({ id: 'high_error_rate', since: new Date(T0).toISOString() }),
    ])
    const held = engine.evaluate(facts({ now: T0 + 30_000, lastMinute: bad }))
    expect(held[0]?.since).toBe(new Date(T0).toISOString())
    expect(engine.evaluate(facts({ now: T0 + 60_000, lastMinute: good }))).toEqual([])
  })

  test('does not re-fire within its cooldown after resolving, and does after', () => {
    const rule = ALERT_RULES.find((r) => r.id === 'high_error_rate')!
    const engine = new AlertEngine()
    engine.evaluate(facts({ now: T0, lastMinute: bad }))
    engine.evaluate(facts({ now: T0 + 1000, lastMinute: good })) // resolved at T0 + 1 s
    expect(
      engine.evaluate(facts({ now: T0 + 1000 + rule.cooldownMs - 1, lastMinute: bad })),
    ).toEqual([])
    const again = engine.evaluate(facts({ now: T0 + 1000 + rule.cooldownMs, lastMinute: bad }))
    expect(again).toEqual([
      expect.objectContaining({
        id: 'high_error_rate',
        since: new Date(T0 + 1000 + rule.cooldownMs).toISOString(),
      }),
    ])
  })

  test('rules keep separate state', () => {
    const engine = new AlertEngine()
    engine.evaluate(facts({ lastMinute: bad }))
    const both = engine.evaluate(
      facts({ now: T0 + 5000, lastMinute: bad, configurationFailing: true }),
    )
    expect(both.map((a) => a.id).sort()).toEqual(['configuration', 'high_error_rate'])
    expect(both.find((a) => a.id === 'high_error_rate')?.since).toBe(new Date(T0).toISOString())
  })
})
