// Request and error counts across every isolate, cheaply: each isolate adds up its own
// counts and hands them to Redis in one pipelined batch at most every FLUSH_MS (through
// waitUntil), never one Redis call per request. Counts live in per-minute hashes that expire.
import type { CallScope } from '../kernel/scope.ts'
import type { RedisStore } from '../redis.ts'

const MINUTE = 60_000
const FLUSH_MS = 10_000
const KEEP_MS = 10 * MINUTE

export interface GlobalCounts {
  lastMinute: { requests: number; errors: number }
  lastFiveMinutes: { requests: number; errors: number }
}

export class GlobalCounters {
  readonly #redis: RedisStore
  readonly #now: () => number
  /** minute → route → [requests, errors] not yet sent. */
  #pending = new Map<number, Map<string, [number, number]>>()
  #lastFlush: number
  #flushing = false

  constructor(redis: RedisStore, now: () => number) {
    this.#redis = redis
    this.#now = now
    this.#lastFlush = now()
  }

  count(route: string, error: boolean): void {
    const minute = Math.floor(this.#now() / MINUTE)
    let routes = this.#pending.get(minute)
    if (!routes) {
      routes = new Map()
      this.#pending.set(minute, routes)
    }
    const c = routes.get(route)
    if (c) {
      c[0]++
      if (error) c[1]++
    } else routes.set(route, [1, error ? 1 : 0])
  }

  /** Sends what has accumulated when the last send is old enough (or when `force`). */
  maybeFlush(scope: CallScope, force = false): void {
    const now = this.#now()
    if (this.#flushing || this.#pending.size === 0 || (!force && now - this.#lastFlush < FLUSH_MS))
      return
    const batch = this.#pending
    this.#pending = new Map()
    this.#lastFlush = now
    this.#flushing = true
    const redis = this.#redis
    const work = redis
      .run(
        'metrics-flush',
        async (r) => {
          const p = r.pipeline()
          for (const [minute, routes] of batch) {
            const key = redis.key('metrics', String(minute))
            for (const [route, [requests, errors]] of routes) {
              p.hincrby(key, `${route}|r`, requests)
              if (errors) p.hincrby(key, `${route}|e`, errors)
            }
            p.pexpire(key, KEEP_MS)
          }
          await p.exec()
        },
        scope,
      )
      .catch(() => {
        // Redis down: these counts are lost to the global view; this isolate's own stay.
      })
      .finally(() => {
        this.#flushing = false
      })
    scope.defer?.(work)
  }

  async read(scope?: CallScope): Promise<GlobalCounts> {
    const redis = this.#redis
    const current = Math.floor(this.#now() / MINUTE)
    const minutes = [0, 1, 2, 3, 4].map((i) => current - i)
    const hashes = await redis.run(
      'metrics-read',
      (r) =>
        Promise.all(
          minutes.map((m) => r.hgetall(redis.key('metrics', String(m))) as Promise<unknown>),
        ),
      scope,
    )
    const sum = (count: number) => {
      let requests = 0
      let errors = 0
      for (const flat of hashes.slice(0, count)) {
        if (!Array.isArray(flat)) continue
        for (let i = 0; i + 1 < flat.length; i += 2) {
          const field = String(flat[i])
          if (field.endsWith('|r')) requests += Number(flat[i + 1])
          else if (field.endsWith('|e')) errors += Number(flat[i + 1])
        }
      }
      return { requests, errors }
    }
    // "Last minute" is the current and the previous minute bucket: counts arrive in batches.
    return { lastMinute: sum(2), lastFiveMinutes: sum(5) }
  }
}
