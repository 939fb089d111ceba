// A driver for property tests of the pure breaker: random operation schedules (time passing,
// acquires, records of previously granted permits in any order, releases, remote advice,
// resets), run against a Breaker while the caller's side (the permits it holds) is tracked.
import fc from 'fast-check'
import {
  Breaker,
  type BreakerConfig,
  type BreakerData,
  type BreakerState,
  type Permit,
  type Transition,
} from '../../../src/resilience/breaker.ts'

export type Op =
  | { kind: 'advance'; ms: number }
  /** Advance to the end of the open period (plus `ms`), when OPEN. */
  | { kind: 'openEnds'; ms: number }
  | { kind: 'acquire' }
  | {
      kind: 'record'
      pick: number
      /** Settle one of the probe permits held, when there is one. */
      probeFirst: boolean
      ok: boolean
      durationMs: number
      random: number
    }
  | { kind: 'release'; pick: number }
  | { kind: 'remoteOpen'; offset: number }
  | { kind: 'remoteClose' }
  | { kind: 'reset' }

/** A permit the caller holds: granted, not yet recorded. */
export interface Held {
  id: number
  probe: boolean
  /** The HALF_OPEN episode it was granted in (0 for non-probes). */
  episode: number
}

/** What one operation did, as seen from outside. */
export interface Step {
  op: Op
  at: number
  before: BreakerState
  after: BreakerState
  permit?: Permit
  transition?: Transition
  /** The permit an op settled (record / release), if there was one to settle. */
  settled?: Held
}

export class Sim {
  readonly config: BreakerConfig
  breaker: Breaker
  now: number
  held: Held[] = []
  /** Counts HALF_OPEN entries: a probe belongs to the episode it was granted in. */
  episode = 0
  #nextId = 1

  constructor(config: BreakerConfig, data: BreakerData, now: number) {
    this.config = config
    this.breaker = new Breaker(config, data)
    this.now = now
    this.episode = data.episode
  }

  /** A copy whose breaker is restored from a JSON round trip of the snapshot. */
  restored(): Sim {
    const data = JSON.parse(JSON.stringify(this.breaker.snapshot())) as BreakerData
    const copy = new Sim(this.config, data, this.now)
    copy.held = this.held.map((h) => ({ ...h }))
    copy.episode = this.episode
    copy.#nextId = this.#nextId
    return copy
  }

  /** Probe permits held that were granted in the current HALF_OPEN episode. */
  currentProbes(): number {
    if (this.breaker.state !== 'HALF_OPEN') return 0
    return this.held.filter((h) => h.probe && h.episode === this.episode).length
  }

  step(op: Op): Step {
    const b = this.breaker
    const before = b.state
    const at = this.now
    const step: Step = { op, at, before, after: before }
    switch (op.kind) {
      case 'advance':
        this.now += op.ms
        step.at = this.now
        break
      case 'openEnds':
        if (b.state === 'OPEN') this.now = Math.max(this.now, b.data.openUntil! + op.ms)
        step.at = this.now
        break
      case 'acquire': {
        const { permit, transition } = b.acquire(this.now)
        if (transition?.to === 'HALF_OPEN') this.episode++
        if (permit.allowed) {
          // The caller keeps the permit's own episode (the model's count is checked against it).
          this.held.push({
            id: this.#nextId++,
            probe: permit.probe,
            episode: permit.probe ? permit.episode : 0,
          })
        }
        step.permit = permit
        step.transition = transition
        break
      }
      case 'record': {
        const probes = this.held.filter((h) => h.probe)
        const from = op.probeFirst && probes.length > 0 ? probes : this.held
        const held = from[op.pick % Math.max(1, from.length)]
        if (!held) break
        this.held = this.held.filter((h) => h !== held)
        step.settled = held
        step.transition = b.record(
          this.now,
          {
            ok: op.ok,
            durationMs: op.durationMs,
            probe: held.probe,
            ...(held.probe ? { episode: held.episode } : {}),
            ...(op.ok ? {} : { failure: 'boom' }),
          },
          op.random,
        )
        break
      }
      case 'release': {
        const probes = this.held.filter((h) => h.probe)
        const held = probes[op.pick % Math.max(1, probes.length)]
        if (!held) break
        this.held = this.held.filter((h) => h !== held)
        step.settled = held
        b.releaseProbe(held.episode)
        break
      }
      case 'remoteOpen':
        step.transition = b.adoptRemoteOpen(this.now, this.now + op.offset)
        break
      case 'remoteClose':
        step.transition = b.adoptRemoteClose(this.now)
        break
      case 'reset':
        step.transition = b.reset(this.now)
        break
    }
    step.after = b.state
    return step
  }
}

export const REALISTIC: BreakerConfig = {
  consecutiveFailures: 5,
  failureRate: 0.5,
  slowCallRate: 0.8,
  slowCallMs: 100,
  windowSize: 20,
  minimumCalls: 5,
  openMs: 1000,
  openMaxMs: 8000,
  jitter: 0.2,
  halfOpenProbes: 1,
}

const rate = fc.oneof(
  fc.constantFrom(0, 0.5, 1),
  fc.double({ min: 0, max: 1, noNaN: true, noDefaultInfinity: true }),
)

/** Any configuration the constructor accepts (small numbers, so that rules do fire). */
export const configArb: fc.Arbitrary<BreakerConfig> = fc
  .record({
    consecutiveFailures: fc.integer({ min: 1, max: 8 }),
    failureRate: rate,
    slowCallRate: rate,
    slowCallMs: fc.integer({ min: 1, max: 200 }),
    windowSize: fc.integer({ min: 1, max: 12 }),
    minimumCallsSeed: fc.nat(),
    openMs: fc.oneof(
      fc.integer({ min: 1, max: 3000 }),
      fc.double({ min: 1, max: 3000, noNaN: true, noDefaultInfinity: true }),
    ),
    openMaxExtra: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 20_000 })),
    jitter: rate,
    halfOpenProbes: fc.integer({ min: 1, max: 3 }),
  })
  .map(({ minimumCallsSeed, openMaxExtra, ...c }) => ({
    ...c,
    minimumCalls: 1 + (minimumCallsSeed % c.windowSize),
    openMaxMs: Math.ceil(c.openMs) + openMaxExtra,
  }))

/** The realistic configuration, or one of many others. */
export const someConfigArb = fc.oneof(fc.constant(REALISTIC), configArb)

const unit = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true })

const opArbs = {
  advance: fc.record({
    kind: fc.constant('advance' as const),
    ms: fc.oneof(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 0, max: 12_000 })),
  }),
  openEnds: fc.record({
    kind: fc.constant('openEnds' as const),
    ms: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 100 })),
  }),
  acquire: fc.constant({ kind: 'acquire' as const }),
  record: fc.record({
    kind: fc.constant('record' as const),
    pick: fc.nat(),
    probeFirst: fc.boolean(),
    ok: fc.boolean(),
    durationMs: fc.oneof(fc.integer({ min: 0, max: 250 }), fc.constantFrom(99, 100, 101)),
    random: unit,
  }),
  release: fc.record({ kind: fc.constant('release' as const), pick: fc.nat() }),
  remoteOpen: fc.record({
    kind: fc.constant('remoteOpen' as const),
    offset: fc.integer({ min: -1000, max: 10_000 }),
  }),
  remoteClose: fc.constant({ kind: 'remoteClose' as const }),
  reset: fc.constant({ kind: 'reset' as const }),
} satisfies { [K in Op['kind']]: fc.Arbitrary<Extract<Op, { kind: K }>> }

export type Weights = { [K in Op['kind']]: number }

export const DEFAULT_WEIGHTS: Weights = {
  advance: 3,
  openEnds: 2,
  acquire: 6,
  record: 5,
  release: 2,
  remoteOpen: 2,
  remoteClose: 1,
  reset: 1,
}

/** Long stays in HALF_OPEN, so probes outlive their episodes more often. */
export const HALF_OPEN_HEAVY: Weights = {
  ...DEFAULT_WEIGHTS,
  advance: 1,
  openEnds: 3,
  record: 3,
  remoteClose: 0,
  reset: 0,
}

/** Schedules of up to 150 operations, drawn with the given weights. */
export function opsArb(weights: Weights = DEFAULT_WEIGHTS): fc.Arbitrary<Op[]> {
  const kinds = Object.keys(opArbs) as Op['kind'][]
  const op: fc.Arbitrary<Op> = fc.oneof(
    ...kinds
      .filter((kind) => weights[kind] > 0)
      .map((kind) => ({ weight: weights[kind], arbitrary: opArbs[kind] as fc.Arbitrary<Op> })),
  )
  return fc.array(op, { maxLength: 150, size: 'large' })
}

export const startArb = fc.integer({ min: 0, max: 2 ** 41 })

/** Schedules drawn with either set of weights. */
export const schedulesArb = fc.oneof(opsArb(DEFAULT_WEIGHTS), opsArb(HALF_OPEN_HEAVY))
