// A user's context for an agent (GET /api/v1/agent/users/{userId}/context): the grant, then
// `cache.userContext.swr(userId, load)`, then on failure the fallback ladder: stale cache, a
// basic answer (or mock data in development). A failing database or an open circuit degrades
// the answer (`degraded`), never to a 5xx; an unknown user and a missing grant are the same 404.
import type { AuthState } from '../auth/state.ts'
import type { SwrCache } from '../cache/swr.ts'
import type { Config } from '../config/index.ts'
import type { ContextSource } from '../contract/context.ts'
import { problems } from '../contract/problem.ts'
import { type Database, isDatabaseOutage } from '../db/client.ts'
import type { Clock } from '../kernel/clock.ts'
import type { EventBus } from '../kernel/events.ts'
import type { Logger } from '../kernel/log.ts'
import type { CallScope } from '../kernel/scope.ts'
import { failureReason, fallbackLadder, mockRung, type Rung } from '../resilience/fallback.ts'
import { CircuitOpenError } from '../resilience/policy.ts'
import { basicMembers, type CachedContext, loadUserContext, mockMembers } from './context.ts'
import type { ContextInvalidations } from './invalidation.ts'

/** What a context read uses, named one by one (the isolate's services have these members). */
export interface ContextDeps {
  config: Pick<Config, 'tunables' | 'environment'>
  clock: Clock
  events: EventBus
  /** Absent when no database is configured. */
  db?: Database
  auth: Pick<AuthState, 'grants'>
  caches: { userContext: SwrCache<CachedContext> }
  breakers: { get(upstream: 'neon'): { isOpen(): boolean } }
  progress: { invalidations: Pick<ContextInvalidations, 'poll'> }
}

export interface ContextRequest {
  agentId: string
  userId: string
  /** `Cache-Control: no-cache`: read past the cache. */
  bypass: boolean
}

/**
 * The context of `userId` as `agentId` may see it: fresh from the cache, from the database,
 * or degraded (`degraded` says why). Throws a 404 ProblemError for an unknown user, a missing
 * grant, and a grant nobody can confirm.
 */
export async function contextFor(
  services: ContextDeps,
  request: ContextRequest,
  scope: CallScope,
  log: Logger,
): Promise<ServedContext> {
  const { agentId, userId } = request
  // Pick up other isolates' invalidations (in the background, at most once per interval).
  services.progress.invalidations.poll(scope)
  const { grant, unconfirmed } = await grantFor(services, agentId, userId, scope, log)
  // A grant nobody can confirm (the database down, nothing cached) is no grant: the same 404,
  // never a degraded 200 that would confirm a user to an agent that may hold no grant for it.
  // (Development's mock data, when asked for, is no one's real data.)
  if (
    grant === 'denied' ||
    (grant === 'unknown' && !services.config.tunables.contextFallbackMock)
  ) {
    throw problems.notFound('No such user')
  }
  const served = await serve(services, userId, grant, request.bypass, scope, log)
  // Unknown user and missing grant are the same 404: nothing tells them apart.
  if (served === 'not_found') throw problems.notFound('No such user')
  // Authorized by a grant the database could not confirm (past GRANT_CACHE_TTL_MS): however
  // fresh the context, the answer rests on a possibly revoked grant, and says so.
  if (unconfirmed && served.degraded === undefined) {
    services.events.emit({ type: 'context.degraded', source: served.source, reason: unconfirmed })
    return { ...served, maxAge: 0, degraded: unconfirmed }
  }
  if (served.cacheStatus === 'HIT' || served.cacheStatus === 'STALE') scope.trace?.add('cache', 0)
  return served
}

type Grant = 'granted' | 'denied' | 'unknown'

/** An answer to a context read, ready to be written. */
export interface ServedContext {
  members: string
  etag?: string
  source: ContextSource
  cacheStatus: 'HIT' | 'MISS' | 'STALE' | 'BYPASS'
  cachedAt: number | null
  /** Seconds a client may reuse this answer. */
  maxAge: number
  degraded?: string
  /** The 200 body, encoded, when it was built once for this cached entry (a fresh hit). */
  body?: Uint8Array<ArrayBuffer>
}

/**
 * The grant, from the isolate's cache or the database; `unknown` when neither can say.
 * `unconfirmed` (a degraded reason) when only an expired cached answer could say.
 */
async function grantFor(
  services: ContextDeps,
  agentId: string,
  userId: string,
  scope: CallScope,
  log: Logger,
): Promise<{ grant: Grant; unconfirmed?: string }> {
  const now = services.clock.now()
  const { grants } = services.auth
  if (!services.db) {
    return { grant: grants.cached(agentId, userId, now, scope)?.granted ? 'granted' : 'unknown' }
  }
  try {
    const granted = await grants.check(services.db, agentId, userId, now, scope)
    return { grant: granted ? 'granted' : 'denied' }
  } catch (err) {
    if (!isDatabaseOutage(err)) log.error('grant check failed (not an outage)', { error: err })
    const stale = grants.cached(agentId, userId, now, scope)
    if (!stale) return { grant: 'unknown' }
    if (!stale.granted) return { grant: 'denied' }
    return { grant: 'granted', unconfirmed: stale.stale ? failureReason(err) : undefined }
  }
}

async function serve(
  services: ContextDeps,
  userId: string,
  grant: Grant,
  bypass: boolean,
  call: CallScope,
  log: Logger,
): Promise<ServedContext | 'not_found'> {
  const { caches, config, clock, db } = services
  // The hot path: a fresh entry answers at once, without the ladder below.
  if (!bypass && grant === 'granted') {
    const fresh = caches.userContext.fresh(userId)
    if (fresh?.value)
      return fromCache(fresh.value, 'cache', 'HIT', fresh.storedAt, fresh.expiresAt, clock.now())
    if (fresh) return 'not_found'
  }
  const ttlSeconds = Math.floor(config.tunables.contextCacheTtlMs / 1000)
  const neon = services.breakers.get('neon')
  // The ladder answers for any failure, so the agent is served either way; but a failure
  // that is not an outage (a broken query, a missing table) is a defect someone must see.
  const reportDefect = (err: unknown): never => {
    if (isDatabaseOutage(err)) throw err
    log.error('context read failed (not an outage)', { error: err })
    throw err
  }

  type Value = ServedContext | 'not_found'
  const rungs: Rung<Value, ContextSource>[] = []
  if (grant === 'granted' && db) {
    rungs.push({
      source: 'database',
      attempt: async () => {
        // An open circuit answers at once: skip to the rungs below without waiting. (A fresh
        // entry never gets here: the hot path above has served it.)
        if (!bypass && neon.isOpen()) throw new CircuitOpenError('neon', 0)
        const result = await caches.userContext.swr(
          userId,
          () => loadUserContext(db, userId, call).catch(reportDefect),
          { defer: call.defer, bypass },
        )
        if (result.value === null) return 'not_found'
        const fromDb = result.status === 'MISS' || result.status === 'BYPASS'
        return fromDb
          ? {
              members: result.value.members,
              etag: result.value.etag,
              source: 'database',
              cacheStatus: result.status,
              cachedAt: null,
              maxAge: ttlSeconds,
            }
          : fromCache(
              result.value,
              result.status === 'STALE' ? 'stale-cache' : 'cache',
              result.status,
              result.storedAt,
              result.expiresAt,
              clock.now(),
            )
      },
    })
    rungs.push({
      source: 'stale-cache',
      attempt: () => {
        const hit = caches.userContext.stale(userId)
        if (!hit?.value) return undefined
        return fromCache(
          hit.value,
          'stale-cache',
          'STALE',
          hit.storedAt,
          hit.expiresAt,
          clock.now(),
        )
      },
    })
  }
  if (config.tunables.contextFallbackMock) {
    rungs.push(
      mockRung(config.environment, 'mock', () => ({
        members: mockMembers(userId),
        source: 'mock' as const,
        cacheStatus: 'MISS' as const,
        cachedAt: null,
        maxAge: 0,
      })),
    )
  }
  rungs.push({
    source: 'basic',
    attempt: () => ({
      members: basicMembers(userId),
      source: 'basic',
      cacheStatus: 'MISS',
      cachedAt: null,
      maxAge: 0,
    }),
  })

  const answer = await fallbackLadder(rungs)
  if (answer.value === 'not_found') return 'not_found'
  if (answer.source === 'database') return answer.value
  // Anything below the first rung is a degraded answer; say why.
  const reason = answer.reason ?? 'database_unavailable'
  services.events.emit({ type: 'context.degraded', source: answer.source, reason })
  return { ...answer.value, source: answer.source, maxAge: 0, degraded: reason }
}

function fromCache(
  value: CachedContext,
  source: 'cache' | 'stale-cache',
  cacheStatus: ServedContext['cacheStatus'],
  storedAt: number,
  expiresAt: number,
  now: number,
): ServedContext {
  const built = source === 'cache' && value.hit?.cachedAt === storedAt ? value.hit.body : undefined
  return {
    members: value.members,
    etag: value.etag,
    source,
    cacheStatus,
    cachedAt: storedAt,
    maxAge: Math.max(0, Math.floor((expiresAt - now) / 1000)),
    ...(built && { body: built }),
  }
}
