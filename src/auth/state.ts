// Per-isolate auth state, built once from the configuration: the key ring, the cache of
// verified tokens, the revocation list, the grants cache and the rate limiters.
import { BoundedLru } from '../cache/lru.ts'
import type { Config } from '../config/index.ts'
import type { EventBus } from '../events.ts'
import type { Logger } from '../log.ts'
import { createLimiter, type Limiter } from '../ratelimit/limiter.ts'
import type { RedisStore } from '../redis.ts'
import type { AccessClaims } from './access-token.ts'
import { GrantCache } from './grants.ts'
import { createKeyRing, type KeyRing } from './keys.ts'
import { RevocationList } from './revocation.ts'

export interface AuthState {
  /** The key ring; rejects when the environment has no JWT secret (fail-closed config). */
  keys(): Promise<KeyRing>
  /** Verified tokens until their exp, so a hot agent is not re-verified with HMAC each time. */
  verified: BoundedLru<string, AccessClaims>
  revocations: RevocationList
  grants: GrantCache
  limits: {
    tokenFailuresPerAgent: Limiter
    tokenFailuresPerAddress: Limiter
    requestsPerAgent: Limiter
  }
}

export function createAuthState(deps: {
  config: Config
  redis?: RedisStore
  log: Logger
  events: EventBus
}): AuthState {
  const { config, redis, log, events } = deps
  const t = config.tunables
  let ring: Promise<KeyRing> | undefined

  const onRedisError = (operation: string) => (err: unknown) => {
    events.emit({ type: 'upstream.fallback', upstream: 'redis', operation })
    log.warn('redis unavailable; using per-isolate state', { operation, error: err })
  }
  const limiter = (name: string, limit: number, windowSeconds: number, leaseSize = 1) =>
    createLimiter({
      name,
      spec: { limit, windowMs: windowSeconds * 1000 },
      redis,
      maxIdentifiers: t.rateLimitMaxIdentifiers,
      leaseSize,
      onRedisError: onRedisError(`ratelimit:${name}`),
    })

  return {
    keys: () => {
      if (!config.jwtSecret) return Promise.reject(new Error('no JWT secret configured'))
      ring ??= createKeyRing(config.jwtSecret, config.jwtPreviousSecret)
      return ring
    },
    verified: new BoundedLru({ maxEntries: t.tokenCacheMaxEntries }),
    revocations: new RevocationList({
      redis,
      maxEntries: t.tokenCacheMaxEntries,
      checkTtlMs: t.revocationCheckTtlMs,
      onRedisError: onRedisError('revocation'),
    }),
    grants: new GrantCache({ maxEntries: t.grantCacheMaxEntries, ttlMs: t.grantCacheTtlMs }),
    limits: {
      tokenFailuresPerAgent: limiter(
        'token-failures-agent',
        t.rateLimitTokenFailuresPerAgent,
        t.rateLimitTokenWindowSeconds,
      ),
      tokenFailuresPerAddress: limiter(
        'token-failures-address',
        t.rateLimitTokenFailuresPerAddress,
        t.rateLimitTokenWindowSeconds,
      ),
      // A lease of up to 10 units: one Redis call per ten requests of a busy agent.
      requestsPerAgent: limiter(
        'requests-agent',
        t.rateLimitRequestsPerAgent,
        t.rateLimitRequestsWindowSeconds,
        Math.min(10, Math.floor(t.rateLimitRequestsPerAgent / 60)),
      ),
    },
  }
}
