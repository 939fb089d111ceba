// A breaker put to work around an upstream: ask for a permit, run the call, record how it
// went, and tell the other isolates about transitions.
//
// Shared state (what cockatiel, opossum, resilience4j and Polly leave out): every transition
// is published to Redis as a small versioned snapshot, off the request path; before a call,
// an isolate whose view of the others is older than the snapshot TTL reads it. A remote OPEN
// is advice — this isolate opens until the remote period ends, never longer — and a `SET NX
// PX` lease elects one half-open probe across all isolates. Any Redis failure leaves the
// breaker on its local state; it never fails the request.
import type { EventBus, UpstreamName } from '../kernel/events.ts'
import {
  Breaker,
  type BreakerConfig,
  type BreakerData,
  initialBreaker,
  type Transition,
} from './breaker.ts'

export class CircuitOpenError extends Error {
  readonly upstream: string
  readonly retryAt: number

  constructor(upstream: string, retryAt: number) {
    super(`${upstream} circuit is open`)
    this.name = 'CircuitOpenError'
    this.upstream = upstream
    this.retryAt = retryAt
  }
}

/** What isolates tell each other about a breaker. */
export interface RemoteBreakerView {
  v: 1
  state: BreakerData['state']
  since: number
  openUntil: number | null
  isolate: string
}

export interface SharedBreakerStore {
  read(name: string): Promise<RemoteBreakerView | undefined>
  publish(name: string, view: RemoteBreakerView): Promise<void>
  /** True when this isolate won the right to probe (SET NX PX). */
  claimProbe(name: string, isolate: string, ttlMs: number): Promise<boolean>
  /** Gives the probe lease back (only if this isolate still holds it). */
  releaseProbe(name: string, isolate: string): Promise<void>
}

export interface ExecuteOptions {
  /** Whether an error means the upstream is failing (else it is the caller's problem). */
  isFailure?: (err: unknown) => boolean
  /**
   * Where publishing goes: the platform's waitUntil, so the request never waits for it.
   * Without it, publishing still runs, detached.
   */
  defer?: (work: Promise<unknown>) => void
}

export interface PolicyOptions {
  name: UpstreamName
  config: BreakerConfig
  now: () => number
  random: () => number
  isolate: string
  events?: EventBus
  shared?: SharedBreakerStore
  /** How long a view read from Redis is trusted. */
  snapshotTtlMs?: number
  /** How long a won probe lease lasts (the probe's own timeout, plus a margin). */
  probeLeaseMs?: number
}

export interface BreakerReport {
  name: string
  state: BreakerData['state']
  since: string
  openUntil: string | null
  metrics: BreakerData['metrics']
  shared: boolean
}

export class CircuitBreakerPolicy {
  readonly name: UpstreamName
  readonly #options: PolicyOptions
  readonly #breaker: Breaker
  #remoteReadAt = Number.NEGATIVE_INFINITY
  #probesUnderLease = 0

  constructor(options: PolicyOptions, restored?: BreakerData) {
    this.name = options.name
    this.#options = options
    this.#breaker = new Breaker(options.config, restored ?? initialBreaker(options.now()))
  }

  get state() {
    return this.#breaker.state
  }

  /** Fails fast when open, so callers can skip straight to their fallback. */
  isOpen(now = this.#options.now()): boolean {
    const d = this.#breaker.data
    return d.state === 'OPEN' && now < (d.openUntil ?? 0)
  }

  snapshot(): BreakerData {
    return this.#breaker.snapshot()
  }

  report(): BreakerReport {
    const d = this.#breaker.data
    return {
      name: this.name,
      state: d.state,
      since: new Date(d.since).toISOString(),
      openUntil: d.openUntil === null ? null : new Date(d.openUntil).toISOString(),
      metrics: { ...d.metrics },
      shared: this.#options.shared !== undefined,
    }
  }

  reset(defer?: (work: Promise<unknown>) => void): void {
    this.#announce(this.#breaker.reset(this.#options.now()), defer)
  }

  async execute<T>(work: () => Promise<T>, options: ExecuteOptions = {}): Promise<T> {
    const { now, shared, isolate } = this.#options
    if (shared) await this.#refreshRemote()

    const { permit, transition } = this.#breaker.acquire(now())
    this.#announce(transition, options.defer)
    if (!permit.allowed) throw new CircuitOpenError(this.name, permit.retryAt)

    const episode = permit.probe ? permit.episode : undefined
    let leased = false
    if (permit.probe && shared) {
      let won = true
      try {
        won = await shared.claimProbe(this.name, isolate, this.#options.probeLeaseMs ?? 10_000)
        leased = won
        if (won) this.#probesUnderLease++
      } catch {
        won = true // Redis unavailable: probe on local state
      }
      if (!won) {
        this.#breaker.releaseProbe(permit.episode)
        this.#breaker.countRejected()
        // Someone else probes: read their verdict on the next call rather than after the TTL.
        this.#remoteReadAt = Number.NEGATIVE_INFINITY
        throw new CircuitOpenError(this.name, now() + 1000)
      }
    }

    const start = now()
    try {
      const result = await work()
      this.#finish(start, { ok: true, probe: permit.probe, episode }, options)
      return result
    } catch (err) {
      const failed = options.isFailure ? options.isFailure(err) : true
      this.#finish(
        start,
        { ok: !failed, probe: permit.probe, episode, failure: failureKind(err) },
        options,
      )
      throw err
    } finally {
      // The verdict is in (and published): let whoever probes next have the lease.
      // The lease is this isolate's, not this call's: give it back when its last probe is done.
      if (leased && --this.#probesUnderLease === 0) {
        this.#detach(() => shared!.releaseProbe(this.name, isolate), options.defer)
      }
    }
  }

  /** Runs store work off the request path; any store failure, even a synchronous throw, is dropped. */
  #detach(work: () => Promise<unknown>, defer?: (work: Promise<unknown>) => void): void {
    const running = Promise.resolve()
      .then(work)
      .catch(() => {})
    defer?.(running)
  }

  #finish(
    start: number,
    outcome: { ok: boolean; probe: boolean; episode?: number; failure?: string },
    options: ExecuteOptions,
  ) {
    const { now, random } = this.#options
    const at = now()
    const transition = this.#breaker.record(at, { ...outcome, durationMs: at - start }, random())
    this.#announce(transition, options.defer)
  }

  /**
   * Reads the shared view at most once per TTL. The caller that finds the view stale reads it
   * and waits for its own read; callers arriving meanwhile go on with the local state rather
   * than await a read another request started (on Workers, another request's I/O).
   */
  async #refreshRemote(): Promise<void> {
    const { now, shared, snapshotTtlMs = 2000 } = this.#options
    if (!shared || now() - this.#remoteReadAt < snapshotTtlMs) return
    this.#remoteReadAt = now()
    try {
      const view = await shared.read(this.name)
      this.#remoteReadAt = now()
      if (view) this.#adopt(view)
    } catch {
      this.#remoteReadAt = now() // Redis unavailable: stay local, ask again after the TTL
    }
  }

  #adopt(view: RemoteBreakerView): void {
    const at = this.#options.now()
    const local = this.#breaker.data
    let transition: Transition | undefined
    if (view.state === 'OPEN' && view.openUntil !== null && view.openUntil > at) {
      transition = this.#breaker.adoptRemoteOpen(at, view.openUntil)
    } else if (
      view.state === 'CLOSED' &&
      local.state !== 'CLOSED' &&
      // A close is news if it came after this outage began here, even if this isolate went
      // HALF_OPEN later (its own probe may have lost the election to the one that closed).
      view.since > (local.openedAt ?? local.since)
    ) {
      transition = this.#breaker.adoptRemoteClose(at)
    }
    // Adopted transitions are not published again: they came from Redis.
    if (transition) this.#emit(transition, true)
  }

  #announce(transition: Transition | undefined, defer?: (work: Promise<unknown>) => void): void {
    if (!transition) return
    this.#emit(transition, false)
    const { shared, isolate } = this.#options
    // Only OPEN and CLOSED are news to others: a HALF_OPEN view would overwrite another
    // isolate's CLOSED (last write wins) and hide the close from everyone.
    if (!shared || transition.to === 'HALF_OPEN') return
    const d = this.#breaker.data
    const view: RemoteBreakerView = {
      v: 1,
      state: d.state,
      since: d.since,
      openUntil: d.openUntil,
      isolate,
    }
    this.#detach(() => shared.publish(this.name, view), defer)
  }

  #emit(transition: Transition, remote: boolean): void {
    this.#options.events?.emit({
      type: 'breaker.transition',
      upstream: this.name,
      from: transition.from,
      to: transition.to,
      remote,
    })
  }
}

/** A short, safe label for why a call failed (never the upstream's raw text). */
function failureKind(err: unknown): string {
  if (err instanceof Error) {
    if (err.name === 'TimeoutError' || err.name === 'AbortError') return 'timeout'
    if (/connect|fetch failed|network|refused|ECONN/i.test(err.message)) return 'unreachable'
    return err.name || 'error'
  }
  return 'error'
}
