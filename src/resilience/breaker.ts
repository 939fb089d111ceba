// The circuit breaker's state machine: CLOSED → OPEN → HALF_OPEN → CLOSED, pure. It takes
// `now` and a random number where it needs them, holds no timers and does no I/O, so its
// whole state is a plain JSON value: snapshot it, restore it elsewhere, and the copy behaves
// exactly like the original. The policy around it (timeouts, shared state, what counts as a
// failure) lives in policy.ts.

export type BreakerState = 'CLOSED' | 'OPEN' | 'HALF_OPEN'

export interface BreakerConfig {
  /** Consecutive failures that open the circuit. */
  consecutiveFailures: number
  /** Failure rate (0..1) over the window that opens it. */
  failureRate: number
  /** Slow-call rate (0..1) over the window that opens it. */
  slowCallRate: number
  /** A call taking at least this long counts as slow. */
  slowCallMs: number
  /** Calls in the count-based sliding window. */
  windowSize: number
  /** No rule opens a closed circuit before this many calls are in its window. */
  minimumCalls: number
  /** First open period; each further consecutive trip doubles it, up to openMaxMs. */
  openMs: number
  openMaxMs: number
  /** ± fraction of random spread on every open period, so isolates do not probe in step. */
  jitter: number
  /** Trial calls let through while half-open; all must succeed to close. */
  halfOpenProbes: number
}

/** One outcome in the window: bit 0 = failed, bit 1 = slow. */
type Outcome = 0 | 1 | 2 | 3

export interface BreakerMetrics {
  calls: number
  failures: number
  slowCalls: number
  rejected: number
  lastFailureAt: number | null
  lastFailure: string | null
}

export interface BreakerData {
  v: 1
  state: BreakerState
  /** When the current state began. */
  since: number
  /** While OPEN: when a probe may first be tried. */
  openUntil: number | null
  /** When the circuit last opened (kept through HALF_OPEN; null once CLOSED). */
  openedAt: number | null
  /** Consecutive trips without a close in between (drives the backoff). */
  trips: number
  consecutiveFailures: number
  /** The last `windowSize` outcomes, oldest first. */
  window: Outcome[]
  probesInFlight: number
  probeSuccesses: number
  /** Counts HALF_OPEN episodes; a probe permit belongs to the episode that granted it. */
  episode: number
  metrics: BreakerMetrics
}

export type Permit =
  | { allowed: true; probe: false }
  | { allowed: true; probe: true; episode: number }
  | { allowed: false; retryAt: number }

export interface Transition {
  from: BreakerState
  to: BreakerState
  at: number
}

export function initialBreaker(now: number): BreakerData {
  return {
    v: 1,
    state: 'CLOSED',
    since: now,
    openUntil: null,
    openedAt: null,
    trips: 0,
    consecutiveFailures: 0,
    window: [],
    probesInFlight: 0,
    probeSuccesses: 0,
    episode: 0,
    metrics: {
      calls: 0,
      failures: 0,
      slowCalls: 0,
      rejected: 0,
      lastFailureAt: null,
      lastFailure: null,
    },
  }
}

/**
 * A breaker over mutable data. Every method that changes state returns the transition it
 * made (or undefined), so the caller can publish it.
 */
export class Breaker {
  readonly config: BreakerConfig
  #data: BreakerData

  constructor(config: BreakerConfig, data: BreakerData) {
    validate(config)
    this.config = config
    this.#data = data
  }

  get state(): BreakerState {
    return this.#data.state
  }

  get data(): Readonly<BreakerData> {
    return this.#data
  }

  /** A deep copy of the whole state, as JSON-safe data. */
  snapshot(): BreakerData {
    return structuredClone(this.#data)
  }

  /**
   * Asks to make a call. OPEN rejects until its period ends, then turns HALF_OPEN; HALF_OPEN
   * lets through at most `halfOpenProbes` calls at a time.
   */
  acquire(now: number): { permit: Permit; transition?: Transition } {
    const d = this.#data
    let transition: Transition | undefined
    if (d.state === 'OPEN') {
      if (now < (d.openUntil ?? 0)) return { permit: this.#reject(d.openUntil ?? now) }
      transition = this.#enter('HALF_OPEN', now)
    }
    if (d.state === 'HALF_OPEN') {
      if (d.probesInFlight >= this.config.halfOpenProbes) {
        return { permit: this.#reject(now), transition }
      }
      d.probesInFlight++
      return { permit: { allowed: true, probe: true, episode: d.episode }, transition }
    }
    return { permit: { allowed: true, probe: false } }
  }

  /** Records a call that was let through (by `acquire`) and has finished. */
  record(
    now: number,
    outcome: {
      ok: boolean
      durationMs: number
      probe: boolean
      episode?: number
      failure?: string
    },
    random: number,
  ): Transition | undefined {
    const d = this.#data
    const slow = outcome.durationMs >= this.config.slowCallMs
    d.metrics.calls++
    if (slow) d.metrics.slowCalls++
    if (!outcome.ok) {
      d.metrics.failures++
      d.metrics.lastFailureAt = now
      d.metrics.lastFailure = outcome.failure ?? 'failure'
    }

    if (outcome.probe) {
      // A probe that outlived its episode (a reset, a remote update, a re-open) no longer
      // speaks for the current state: counting it would free a slot or close on stale news.
      if (d.state !== 'HALF_OPEN' || outcome.episode !== d.episode) return undefined
      d.probesInFlight = Math.max(0, d.probesInFlight - 1)
      if (!outcome.ok) return this.#trip(now, random)
      d.probeSuccesses++
      return d.probeSuccesses >= this.config.halfOpenProbes ? this.#enter('CLOSED', now) : undefined
    }
    if (d.state !== 'CLOSED') return undefined // a straggler from before the circuit opened

    d.window.push(((outcome.ok ? 0 : 1) | (slow ? 2 : 0)) as Outcome)
    if (d.window.length > this.config.windowSize) d.window.shift()
    d.consecutiveFailures = outcome.ok ? 0 : d.consecutiveFailures + 1
    return this.#shouldTrip() ? this.#trip(now, random) : undefined
  }

  /**
   * Takes a remote isolate's OPEN as advice: open until its end, never longer. While this
   * isolate's own open period runs, the earlier end wins; once it is over (the breaker still
   * says OPEN until its next acquire), the remote period is newer news and is followed.
   */
  adoptRemoteOpen(now: number, openUntil: number): Transition | undefined {
    const d = this.#data
    if (openUntil <= now) return undefined
    if (d.state === 'OPEN') {
      const running = d.openUntil !== null && now < d.openUntil
      d.openUntil = running ? Math.min(d.openUntil!, openUntil) : openUntil
      return undefined
    }
    const transition = this.#enter('OPEN', now)
    d.openUntil = openUntil
    return transition
  }

  /** Takes a remote close (another isolate's probe succeeded). */
  adoptRemoteClose(now: number): Transition | undefined {
    return this.#data.state === 'CLOSED' ? undefined : this.#enter('CLOSED', now)
  }

  /** Counts a call refused without asking the breaker (e.g. another isolate holds the probe). */
  countRejected(): void {
    this.#data.metrics.rejected++
  }

  /** Releases a probe permit whose call never ran (e.g. the probe election was lost). */
  releaseProbe(episode: number): void {
    const d = this.#data
    if (d.state === 'HALF_OPEN' && d.episode === episode && d.probesInFlight > 0) d.probesInFlight--
  }

  reset(now: number): Transition | undefined {
    return this.#data.state === 'CLOSED' ? undefined : this.#enter('CLOSED', now)
  }

  #shouldTrip(): boolean {
    const { window, consecutiveFailures } = this.#data
    const c = this.config
    if (window.length < c.minimumCalls) return false
    if (consecutiveFailures >= c.consecutiveFailures) return true
    let failures = 0
    let slow = 0
    for (const outcome of window) {
      failures += outcome & 1
      slow += (outcome >> 1) & 1
    }
    return failures / window.length >= c.failureRate || slow / window.length >= c.slowCallRate
  }

  #trip(now: number, random: number): Transition {
    const d = this.#data
    const transition = this.#enter('OPEN', now)
    d.trips++
    const base = Math.min(this.config.openMaxMs, this.config.openMs * 2 ** (d.trips - 1))
    const spread = 1 + this.config.jitter * (2 * random - 1)
    d.openUntil = now + Math.min(this.config.openMaxMs, Math.max(1, Math.round(base * spread)))
    return transition
  }

  #enter(state: BreakerState, now: number): Transition {
    const d = this.#data
    const transition = { from: d.state, to: state, at: now }
    d.state = state
    d.since = now
    d.probesInFlight = 0
    d.probeSuccesses = 0
    if (state === 'HALF_OPEN') d.episode++
    if (state === 'OPEN' && transition.from === 'CLOSED') d.openedAt = now
    if (state === 'CLOSED') d.openedAt = null
    if (state !== 'OPEN') d.openUntil = null
    if (state === 'CLOSED') {
      d.trips = 0
      d.window = []
      d.consecutiveFailures = 0
    }
    if (state === 'OPEN') {
      d.window = []
      d.consecutiveFailures = 0
    }
    return transition
  }

  #reject(retryAt: number): Permit {
    this.#data.metrics.rejected++
    return { allowed: false, retryAt }
  }
}

function validate(c: BreakerConfig): void {
  const positive = [
    'consecutiveFailures',
    'windowSize',
    'minimumCalls',
    'openMs',
    'openMaxMs',
    'halfOpenProbes',
  ] as const
  for (const key of positive) {
    if (!(c[key] >= 1)) throw new RangeError(`breaker ${key} must be >= 1`)
  }
  if (c.minimumCalls > c.windowSize) throw new RangeError('minimumCalls must not exceed windowSize')
  if (c.openMaxMs < c.openMs) throw new RangeError('openMaxMs must not be below openMs')
  for (const key of ['failureRate', 'slowCallRate', 'jitter'] as const) {
    if (!(c[key] >= 0 && c[key] <= 1)) throw new RangeError(`breaker ${key} must be within 0..1`)
  }
}

/** Whether `value` is a breaker snapshot this version can restore. */
export function isBreakerData(value: unknown): value is BreakerData {
  if (value === null || typeof value !== 'object') return false
  const d = value as Partial<BreakerData>
  return (
    d.v === 1 &&
    (d.state === 'CLOSED' || d.state === 'OPEN' || d.state === 'HALF_OPEN') &&
    typeof d.since === 'number' &&
    Array.isArray(d.window) &&
    typeof d.trips === 'number' &&
    typeof d.episode === 'number' &&
    (d.openedAt === null || typeof d.openedAt === 'number') &&
    typeof d.metrics === 'object'
  )
}
