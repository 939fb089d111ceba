// Per-isolate auth state, built once from the configuration: the key ring, the cache of
// verified tokens, the revocation list, the agents' status, the grants cache and the rate
// limiters.
import { BoundedLru } from '../cache/lru.ts'
import type { Config } from '../config/index.ts'
import type { EventBus } from '../kernel/events.ts'
import type { Logger } from '../kernel/log.ts'
import { createLimiter, type Limiter } from '../ratelimit/limiter.ts'
import type { RedisStore } from '../redis.ts'
import type { AccessClaims } from './access-token.ts'
import { AgentStatusCache } from './agent-status.ts'
import { GrantCache } from './grants.ts'
import { createKeyRing, type KeyRing } from './keys.ts'
import { ReplayCache } from './replay.ts'
import { type Issuer, issuerOf } from './resources.ts'
import { RevocationList } from './revocation.ts'

export interface AuthState {
  /**
   * The key ring; rejects (SigningKeyError) when nothing can sign or a configured key cannot
   * be imported. A rejection is kept: the configuration does not change within an isolate.
   */
  keys(): Promise<KeyRing>
  /**
   * The deployment's identity for an origin (PUBLIC_URL, or in development a request's own),
   * built once per origin: the hot path reads it on every request.
   */
  identity(origin: string): Issuer
  /**
   * Verified tokens until their exp, so a hot agent is not re-verified each time. Keyed by the
   * token's signature (its last segment): hashing the whole token, hundreds of characters, on every
   * request cost more than the rest of the lookup; an entry is a hit only for the same token.
   */
  verified: BoundedLru<string, { token: string; claims: AccessClaims }>
  revocations: RevocationList
  /** Whether an agent is active and since when its tokens hold (cached like grants). */
  agents: AgentStatusCache
  grants: GrantCache
  /** Once-only `jti`s of client assertions and DPoP proofs (global with Redis). */
  replays: ReplayCache
  /** DPoP proof keys imported, with their thumbprints (one per bound client, like tokens). */
  dpopKeys: BoundedLru<string, { key: CryptoKey; jkt: string }>
  /** How long after its issue an access token can still be valid (lifetime + clock skew), ms. */
  longestTokenLifeMs: number
  limits: {
    tokenFailuresPerAgent: Limiter
    tokenFailuresPerAddress: Limiter
    requestsPerAgent: Limiter
  }
  /**
   * Attempts this isolate has counted against a failure budget and not yet settled, by the
   * budget's key: a refusal while some are in flight may be theirs, not failures'.
   */
  attemptsInFlight: BoundedLru<string, { n: number }>
}

export function createAuthState(deps: {
  config: Config
  redis?: RedisStore
  log: Logger
  events: EventBus
}): AuthState {
  const { config, redis, log, events } = deps
  const t = config.tunables
  // The ring is kept, never the promise of it: each request awaits only its own key imports
  // (Workers cancel what another request settles); a cold isolate's first requests may each
  // import the keys once.
  let ring: KeyRing | undefined
  // One origin in production (PUBLIC_URL); a few in development (localhost, 127.0.0.1, …).
  const identities = new BoundedLru<string, Issuer>({ maxEntries: 16 })

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
      leaseRequestTimeoutMs: t.redisTimeoutMs + 1000,
      onRedisError: onRedisError(`ratelimit:${name}`),
    })

  return {
    keys: async () => {
      ring ??= await createKeyRing(config)
      return ring
    },
    identity: (origin) => {
      const known = identities.get(origin, 0)?.value
      if (known) return known
      const issuer = issuerOf(origin)
      identities.set(origin, issuer, { now: 0, ttlMs: Number.POSITIVE_INFINITY })
      return issuer
    },
    verified: new BoundedLru({ maxEntries: t.tokenCacheMaxEntries }),
    revocations: new RevocationList({
      redis,
      // The cache of Redis answers may be empty (TOKEN_CACHE_MAX_ENTRIES=0): revocations
      // themselves are kept by their own bounds, never by a cache's.
      cacheMaxEntries: t.tokenCacheMaxEntries,
      checkTtlMs: t.revocationCheckTtlMs,
      maxPerAgent: t.revocationMaxPerAgent,
      maxAgents: t.revocationMaxAgents,
      onRedisError: onRedisError('revocation'),
    }),
    agents: new AgentStatusCache({
      maxEntries: t.grantCacheMaxEntries,
      ttlMs: t.grantCacheTtlMs,
      onDefect: (err) => log.error('agent status lookup failed (not an outage)', { error: err }),
    }),
    grants: new GrantCache({ maxEntries: t.grantCacheMaxEntries, ttlMs: t.grantCacheTtlMs }),
    attemptsInFlight: new BoundedLru({ maxEntries: t.rateLimitMaxIdentifiers }),
    dpopKeys: new BoundedLru({
      maxEntries: t.tokenCacheMaxEntries,
      maxBytes: t.dpopKeyCacheMaxBytes,
    }),
    replays: new ReplayCache({
      redis,
      maxEntries: t.replayCacheMaxEntries,
      onRedisError: onRedisError('replay'),
    }),
    // A token issued now expires within its lifetime (+1 s: see issuedAtFor), accepted that
    // much past exp by the clock tolerance.
    longestTokenLifeMs: (t.accessTokenTtlSeconds + t.tokenClockToleranceSeconds + 1) * 1000,
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
