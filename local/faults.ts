// Fault injection shared by the local stand-ins (Neon HTTP, Upstash REST). Node-only.
//
// A stand-in consults its FaultInjector once per data request. The plan is set from
// tests in-process or, for code running inside workerd, through the control server.
import type { Server } from 'node:http'

export interface FaultPlan {
  /** Extra delay before each answer, in milliseconds. */
  latencyMs?: number
  /** Fraction (0..1) of requests answered with an upstream error instead of a result. */
  errorRate?: number
  /** Accept the request and never answer it (until the client gives up or the plan changes). */
  hang?: boolean
  /** Stop listening: new connections are refused and open ones are dropped. */
  refuse?: boolean
}

export interface StandinStats {
  /** Data requests received (control traffic excluded). */
  requests: number
  /** Requests answered with an injected error. */
  injectedErrors: number
  /** Requests left hanging. */
  hung: number
  /** Commands or queries executed against the real engine. */
  executed: number
}

export type FaultDecision =
  | { kind: 'pass'; delayMs: number }
  | { kind: 'error'; delayMs: number }
  | { kind: 'hang' }

export class FaultInjector {
  #plan: FaultPlan = {}
  #counter = 0
  #hanging = new Set<() => void>()
  #listeners = new Set<(plan: FaultPlan) => void | Promise<void>>()
  readonly stats: StandinStats = { requests: 0, injectedErrors: 0, hung: 0, executed: 0 }

  get plan(): Readonly<FaultPlan> {
    return this.#plan
  }

  /** Applies `plan`; resolves once every stand-in has acted on it (e.g. listens again). */
  set(plan: FaultPlan): Promise<void> {
    const errorRate = plan.errorRate ?? 0
    if (!(errorRate >= 0 && errorRate <= 1)) throw new RangeError('errorRate must be within 0..1')
    if ((plan.latencyMs ?? 0) < 0) throw new RangeError('latencyMs must be >= 0')
    this.#plan = { ...plan }
    this.#counter = 0
    if (!plan.hang) this.releaseHanging()
    const applied = [...this.#listeners].map((listener) => listener(this.#plan))
    return Promise.all(applied).then(() => {})
  }

  reset(): Promise<void> {
    return this.set({})
  }

  resetStats(): void {
    this.stats.requests = 0
    this.stats.injectedErrors = 0
    this.stats.hung = 0
    this.stats.executed = 0
  }

  /** Called by a stand-in when its plan changes (used to stop and restart listening). */
  onChange(listener: (plan: FaultPlan) => void | Promise<void>): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  /**
   * Decide the fate of one data request. Errors are spread evenly and deterministically
   * (request n fails when floor(n·rate) advances), so a 50 % plan fails exactly every other
   * request and tests do not depend on luck.
   */
  decide(): FaultDecision {
    this.stats.requests++
    const { latencyMs = 0, errorRate = 0, hang = false } = this.#plan
    if (hang) {
      this.stats.hung++
      return { kind: 'hang' }
    }
    const n = this.#counter++
    const fails = Math.floor((n + 1) * errorRate) > Math.floor(n * errorRate)
    if (fails) {
      this.stats.injectedErrors++
      return { kind: 'error', delayMs: latencyMs }
    }
    return { kind: 'pass', delayMs: latencyMs }
  }

  /** Park a hung request; `release` is called when the plan stops hanging or on close. */
  park(release: () => void): () => void {
    this.#hanging.add(release)
    return () => this.#hanging.delete(release)
  }

  releaseHanging(): void {
    const pending = [...this.#hanging]
    this.#hanging.clear()
    for (const release of pending) release()
  }
}

/**
 * Keeps a server's listening state in line with the plan's `refuse` flag: refusing closes
 * the listener and every open connection (a client then sees ECONNREFUSED, as with a
 * database proxy that is down); clearing it listens again on the same port. The plan counts
 * as applied only once the server listens again: a test's next request must not race the
 * re-listen (workerd reports that refusal as "Network connection lost").
 */
export function bindRefusal(server: Server, faults: FaultInjector, host: string, port: number) {
  let refusing = false
  return faults.onChange((plan) => {
    const refuse = plan.refuse === true
    if (refuse === refusing) return
    refusing = refuse
    if (refuse) {
      server.close()
      server.closeAllConnections()
      return
    }
    return new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, host, () => {
        server.off('error', reject)
        resolve()
      })
    })
  })
}

export function sleep(ms: number): Promise<void> {
  return ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve()
}
