// The breakers of this isolate, one per upstream, created once from the configuration:
// listed for the health report, resettable.
import type { Tunables } from '../config/tunables.ts'
import type { EventBus, UpstreamName } from '../kernel/events.ts'
import type { BreakerConfig } from './breaker.ts'
import { type BreakerReport, CircuitBreakerPolicy, type SharedBreakerStore } from './policy.ts'

export function breakerConfig(t: Tunables): BreakerConfig {
  return {
    consecutiveFailures: t.breakerConsecutiveFailures,
    failureRate: t.breakerFailureRatePercent / 100,
    slowCallRate: t.breakerSlowCallRatePercent / 100,
    slowCallMs: t.breakerSlowCallMs,
    windowSize: t.breakerWindowSize,
    minimumCalls: t.breakerMinimumCalls,
    openMs: t.breakerOpenMs,
    openMaxMs: t.breakerOpenMaxMs,
    jitter: 0.2,
    halfOpenProbes: t.breakerHalfOpenProbes,
  }
}

export interface RegistryDeps {
  tunables: Tunables
  now: () => number
  random: () => number
  isolate: string
  events: EventBus
}

export class BreakerRegistry {
  readonly #breakers = new Map<UpstreamName, CircuitBreakerPolicy>()
  readonly #deps: RegistryDeps

  constructor(deps: RegistryDeps) {
    this.#deps = deps
  }

  /**
   * The breaker of `name`, created on first use. A shared store makes it share state with
   * the other isolates; the Redis breaker is always local.
   */
  get(name: UpstreamName, options: { shared?: SharedBreakerStore; probeLeaseMs?: number } = {}) {
    let breaker = this.#breakers.get(name)
    if (!breaker) {
      const { tunables, now, random, isolate, events } = this.#deps
      breaker = new CircuitBreakerPolicy({
        name,
        config: breakerConfig(tunables),
        now,
        random,
        isolate,
        events,
        shared: name === 'redis' ? undefined : options.shared,
        snapshotTtlMs: tunables.breakerSnapshotTtlMs,
        probeLeaseMs: options.probeLeaseMs,
      })
      this.#breakers.set(name, breaker)
    }
    return breaker
  }

  list(): BreakerReport[] {
    return [...this.#breakers.values()].map((b) => b.report())
  }

  reset(name?: UpstreamName): void {
    for (const [key, breaker] of this.#breakers) if (!name || key === name) breaker.reset()
  }
}
