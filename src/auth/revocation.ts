// Revoked access tokens, by (agent, jti), until the token's own expiry.
//
// With Redis the denylist is global: a revocation is written there, and every isolate asks
// Redis about a token it has not asked about within REVOCATION_CHECK_TTL_MS, so all isolates
// honour a revocation within that time. Without Redis (or while it fails) the list is per
// isolate: a revocation then takes effect only where it was made — documented in the README.
import { BoundedLru } from '../cache/lru.ts'
import type { CallScope } from '../platform.ts'
import type { RedisStore } from '../redis.ts'

export interface RevocationOptions {
  redis?: RedisStore
  maxEntries: number
  /** How long a "not revoked" answer from Redis is trusted locally. */
  checkTtlMs: number
  onRedisError?: (err: unknown) => void
}

export class RevocationList {
  readonly #options: RevocationOptions
  readonly #revoked: BoundedLru<string, true>
  readonly #checked: BoundedLru<string, true>

  constructor(options: RevocationOptions) {
    this.#options = options
    this.#revoked = new BoundedLru({ maxEntries: options.maxEntries })
    this.#checked = new BoundedLru({ maxEntries: options.maxEntries })
  }

  async revoke(agentId: string, jti: string, expSeconds: number, now: number, scope?: CallScope) {
    const key = `${agentId}:${jti}`
    const ttlMs = expSeconds * 1000 - now
    if (ttlMs <= 0) return // already expired: nothing left to deny
    this.#revoked.set(key, true, { now, ttlMs })
    this.#checked.delete(key)
    const { redis } = this.#options
    if (!redis) return
    try {
      await redis.run(
        'revoke',
        (r) => r.set(redis.key('revoked', key), '1', { pxat: expSeconds * 1000 }),
        scope,
      )
    } catch (err) {
      this.#options.onRedisError?.(err)
      throw err
    }
  }

  async isRevoked(agentId: string, jti: string, now: number, scope?: CallScope): Promise<boolean> {
    const key = `${agentId}:${jti}`
    if (this.#revoked.get(key, now)) return true
    const { redis, checkTtlMs } = this.#options
    if (!redis || this.#checked.get(key, now)) return false
    try {
      const found = await redis.run(
        'revocation-check',
        (r) => r.exists(redis.key('revoked', key)),
        scope,
      )
      if (found > 0) {
        // Remember it for a while (at least a second): the token expires soon enough anyway.
        this.#revoked.set(key, true, { now, ttlMs: Math.max(checkTtlMs, 1000) })
        return true
      }
      this.#checked.set(key, true, { now, ttlMs: checkTtlMs })
      return false
    } catch (err) {
      // Redis down: what this isolate knows is all there is (fail open, like the contract's
      // per-isolate mode); the error is reported so health shows it.
      this.#options.onRedisError?.(err)
      return false
    }
  }
}
