// Once-only identifiers: a client assertion's `jti` (RFC 7523 §3 item 7) and a DPoP proof's
// `jti` (RFC 9449 §11.1) are accepted the first time they are seen and refused until they
// expire. With Redis the record is global (`SET NX PXAT`, atomic, so of N concurrent uses
// exactly one wins); without it, or while Redis fails, per isolate: the check and the record
// are one synchronous step there, so concurrent requests in an isolate cannot both win.
import type { CallScope } from '../kernel/scope.ts'
import type { RedisStore } from '../redis.ts'

/** The isolate's record is full of identifiers still live: nothing more can be checked. */
export class ReplayCacheFull extends Error {
  constructor() {
    super('replay cache full')
    this.name = 'ReplayCacheFull'
  }
}

export class ReplayCache {
  readonly #seen = new Map<string, number>()
  readonly #options: {
    redis?: RedisStore
    maxEntries: number
    onRedisError?: (err: unknown) => void
  }

  constructor(options: {
    redis?: RedisStore
    maxEntries: number
    onRedisError?: (err: unknown) => void
  }) {
    this.#options = options
  }

  /**
   * True the first time (`kind`, `id`) is used before `expiresAt` (ms since the epoch), false on
   * every later use until then. Throws ReplayCacheFull when the isolate's record holds
   * `maxEntries` live identifiers (a refusal to check is never an acceptance).
   */
  async firstUse(
    kind: 'client-assertion' | 'dpop-proof',
    id: string,
    expiresAt: number,
    now: number,
    scope?: CallScope,
  ): Promise<boolean> {
    const { redis } = this.#options
    if (redis) {
      try {
        const set = await redis.run(
          'replay-check',
          (r) => r.set(redis.key('once', kind, id), '1', { nx: true, pxat: Math.ceil(expiresAt) }),
          scope,
        )
        // Also kept here: an isolate that falls back to itself later still knows it.
        if (set !== null) this.#record(`${kind}\u0000${id}`, expiresAt, now, false)
        return set !== null
      } catch (err) {
        this.#options.onRedisError?.(err)
      }
    }
    const key = `${kind}\u0000${id}`
    const until = this.#seen.get(key)
    if (until !== undefined && now < until) return false
    this.#record(key, expiresAt, now)
    return true
  }

  /** `strict`: a full record throws; else (Redis holds it already) the copy is skipped. */
  #record(key: string, expiresAt: number, now: number, strict = true): void {
    if (this.#seen.size >= this.#options.maxEntries) {
      for (const [k, until] of this.#seen) if (until <= now) this.#seen.delete(k)
      if (this.#seen.size >= this.#options.maxEntries) {
        if (strict) throw new ReplayCacheFull()
        return
      }
    }
    this.#seen.set(key, expiresAt)
  }
}
