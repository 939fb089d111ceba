// Fakes for policy tests: a clock, an in-memory SharedBreakerStore with Redis' semantics
// (last write wins; SET NX PX leases that expire on the fake clock, claimed again by their
// holder, released only by it) and switches that make each operation reject, throw
// synchronously or hang, and a collector for deferred work.
import type { RemoteBreakerView, SharedBreakerStore } from '../../../src/resilience/policy.ts'

export class FakeClock {
  t: number

  constructor(t = 1_000_000) {
    this.t = t
  }

  readonly now = (): number => this.t

  advance(ms: number): number {
    this.t += ms
    return this.t
  }

  set(t: number): number {
    this.t = t
    return t
  }
}

/** ok; reject (a failed promise); throw (synchronously, before any promise); hang. */
export type StoreMode = 'ok' | 'reject' | 'throw' | 'hang'
type StoreOp = 'read' | 'publish' | 'claim' | 'releaseProbe'

interface Hanging {
  op: StoreOp
  resolve: () => void
  reject: (err: Error) => void
}

export class MemoryBreakerStore implements SharedBreakerStore {
  readonly views = new Map<string, RemoteBreakerView>()
  readonly leases = new Map<string, { isolate: string; expiresAt: number }>()
  readonly mode: Record<StoreOp, StoreMode> = {
    read: 'ok',
    publish: 'ok',
    claim: 'ok',
    releaseProbe: 'ok',
  }
  reads = 0
  readonly published: { name: string; view: RemoteBreakerView }[] = []
  readonly claims: { name: string; isolate: string; ttlMs: number; won: boolean }[] = []
  /** Every release that reached the store; `deleted` when it removed the lease. */
  readonly releases: { name: string; isolate: string; deleted: boolean }[] = []
  readonly #hanging: Hanging[] = []
  readonly #now: () => number

  constructor(now: () => number) {
    this.#now = now
  }

  read(name: string): Promise<RemoteBreakerView | undefined> {
    this.reads++
    return this.#run('read', () => {
      const view = this.views.get(name)
      return view && { ...view }
    })
  }

  publish(name: string, view: RemoteBreakerView): Promise<void> {
    return this.#run('publish', () => {
      this.published.push({ name, view: { ...view } })
      this.views.set(name, { ...view })
    })
  }

  /** SET NX PX, then (like redisBreakerStore) a lease already held by `isolate` counts as won. */
  claimProbe(name: string, isolate: string, ttlMs: number): Promise<boolean> {
    return this.#run('claim', () => {
      const lease = this.#lease(name)
      if (!lease) this.leases.set(name, { isolate, expiresAt: this.#now() + ttlMs })
      const won = !lease || lease.isolate === isolate
      this.claims.push({ name, isolate, ttlMs, won })
      return won
    })
  }

  /** Deletes the lease only when `isolate` holds it (GET, compare, DEL). */
  releaseProbe(name: string, isolate: string): Promise<void> {
    return this.#run('releaseProbe', () => {
      const deleted = this.#lease(name)?.isolate === isolate
      if (deleted) this.leases.delete(name)
      this.releases.push({ name, isolate, deleted })
    })
  }

  /** The lease on `name`, unless it has expired. */
  #lease(name: string): { isolate: string; expiresAt: number } | undefined {
    const lease = this.leases.get(name)
    if (lease && lease.expiresAt <= this.#now()) this.leases.delete(name)
    return this.leases.get(name)
  }

  /** Operations currently hanging. */
  get hanging(): number {
    return this.#hanging.length
  }

  /** Lets every hanging operation complete (as it would have, now). */
  release(op?: StoreOp): void {
    for (const h of this.#take(op)) h.resolve()
  }

  /** Fails every hanging operation (e.g. the client's own timeout fired). */
  fail(op?: StoreOp): void {
    for (const h of this.#take(op)) h.reject(new Error(`store ${h.op} timed out`))
  }

  #take(op?: StoreOp): Hanging[] {
    const taken = this.#hanging.filter((h) => !op || h.op === op)
    for (const h of taken) this.#hanging.splice(this.#hanging.indexOf(h), 1)
    return taken
  }

  #run<T>(op: StoreOp, apply: () => T): Promise<T> {
    const mode = this.mode[op]
    if (mode === 'throw') throw new Error(`store ${op} failed`)
    if (mode === 'reject') return Promise.reject(new Error(`store ${op} failed`))
    if (mode === 'hang') {
      return new Promise<T>((resolve, reject) => {
        this.#hanging.push({ op, resolve: () => resolve(apply()), reject })
      })
    }
    return Promise.resolve(apply())
  }
}

/** Collects what the policy hands to `defer` (the platform's waitUntil). */
export function deferrals() {
  const pending: Promise<unknown>[] = []
  return {
    defer: (work: Promise<unknown>): void => {
      pending.push(work)
    },
    pending,
    /** Awaits everything deferred so far (and whatever that deferred in turn). */
    async flush(): Promise<void> {
      while (pending.length > 0) await Promise.all(pending.splice(0))
    },
  }
}

/** Lets every queued promise callback run (not for use under fake timers). */
export function ticks(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

/** A promise resolved or rejected from outside. */
export function manual<T>() {
  let resolve!: (value: T) => void
  let reject!: (err: unknown) => void
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

/** Records how a promise settles, without awaiting it. */
export function settle<T>(promise: Promise<T>) {
  const state: { done: boolean; value?: T; error?: unknown } = { done: false }
  promise.then(
    (value) => Object.assign(state, { done: true, value }),
    (error: unknown) => Object.assign(state, { done: true, error }),
  )
  return state
}
