// GET /api/v1/agent/users/{userId}/context — scope context:read.
//
// grants check → `cache.userContext.swr(userId, load)` → on failure the fallback ladder:
// stale cache, then a basic answer (or mock data in development). A failing database or an
// open circuit degrades the answer (`degraded: true`, `X-Degraded`), never to a 5xx.
import { type Context, Hono } from 'hono'
import {
  type ContextSource,
  contextHeaders,
  userContextResponse,
  userIdParam,
} from '../contract/context.ts'
import { problems } from '../contract/problem.ts'
import { isDatabaseOutage } from '../db/client.ts'
import type { AppEnv } from '../http/context.ts'
import {
  authorize,
  type HeaderName,
  type Operation,
  problem,
  RATE_LIMIT,
  type ResponseDoc,
  unavailable,
  validate,
} from '../http/operation.ts'
import { requestScope } from '../http/scope.ts'
import { fallbackLadder, mockRung, type Rung } from '../resilience/fallback.ts'
import { CircuitOpenError } from '../resilience/policy.ts'
import { basicMembers, type CachedContext, loadUserContext, mockMembers } from '../users/context.ts'

type Grant = 'granted' | 'denied' | 'unknown'

interface Served {
  members: string
  etag?: string
  source: ContextSource
  cacheStatus: 'HIT' | 'MISS' | 'STALE' | 'BYPASS'
  cachedAt: number | null
  /** Seconds a client may reuse this answer. */
  maxAge: number
  degraded?: string
}

/** The grant, from the isolate's cache or the database; `unknown` when neither can say. */
async function grantFor(c: Context<AppEnv>, agentId: string, userId: string): Promise<Grant> {
  const services = c.get('services')
  const now = services.clock.now()
  const { grants } = services.auth
  if (!services.db) return grants.cached(agentId, userId, now)?.granted ? 'granted' : 'unknown'
  try {
    const granted = await grants.check(services.db, agentId, userId, now, requestScope(c))
    return granted ? 'granted' : 'denied'
  } catch (err) {
    if (!isDatabaseOutage(err))
      c.get('log').error('grant check failed (not an outage)', { error: err })
    const stale = grants.cached(agentId, userId, now)
    return stale ? (stale.granted ? 'granted' : 'denied') : 'unknown'
  }
}

async function serve(
  c: Context<AppEnv>,
  userId: string,
  grant: Grant,
): Promise<Served | 'not_found'> {
  const services = c.get('services')
  const { caches, config, clock, db } = services
  const bypass = /\bno-cache\b/i.test(c.req.header('cache-control') ?? '')
  // The hot path: a fresh entry answers at once, without the ladder below.
  if (!bypass && grant === 'granted') {
    const fresh = caches.userContext.fresh(userId)
    if (fresh?.value)
      return fromCache(fresh.value, 'cache', 'HIT', fresh.storedAt, fresh.expiresAt, clock.now())
    if (fresh) return 'not_found'
  }
  const ttlSeconds = Math.floor(config.tunables.contextCacheTtlMs / 1000)
  const neon = services.breakers.get('neon')
  const call = requestScope(c)
  // The ladder answers for any failure, so the agent is served either way; but a failure
  // that is not an outage (a broken query, a missing table) is a defect someone must see.
  const reportDefect = (err: unknown): never => {
    if (isDatabaseOutage(err)) throw err
    c.get('log').error('context read failed (not an outage)', { error: err })
    throw err
  }

  type Value = Served | 'not_found'
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
  cacheStatus: Served['cacheStatus'],
  storedAt: number,
  expiresAt: number,
  now: number,
): Served {
  return {
    members: value.members,
    etag: value.etag,
    source,
    cacheStatus,
    cachedAt: storedAt,
    maxAge: Math.max(0, Math.floor((expiresAt - now) / 1000)),
  }
}

const CONTEXT_EXAMPLE = {
  user: {
    id: 'demo-user-1',
    display_name: 'Ada',
    timezone: 'Europe/Berlin',
    locale: 'de-DE',
  },
  context: { goals: ['Finish the onboarding course'] },
  progress: [
    {
      task_id: 'onboarding',
      status: 'in_progress',
      progress: 40,
      updated_at: '2026-11-26T09:00:00.000Z',
    },
  ],
  source: 'database',
  cached_at: null,
  degraded: false,
}

/** The headers of a context answer (200, or 304 for a matching If-None-Match). */
const contextAnswer = (status: 200 | 304): Omit<ResponseDoc, 'description'> => ({
  headers: ['X-Cache', ...RATE_LIMIT, ...(status === 304 ? (['ETag'] as HeaderName[]) : [])],
  optionalHeaders: status === 200 ? ['ETag', 'X-Degraded'] : [],
  headerDocs: {
    'Cache-Control': {
      description:
        '`private, max-age=<seconds the answer stays fresh>`; `private, no-store` when degraded.',
      schema: { type: 'string', pattern: '^private, (max-age=[0-9]+|no-store)$' },
    },
    'X-Degraded': {
      description:
        'Present when degraded: why (e.g. `circuit_open`, `database_unavailable`). No `ETag` then.',
    },
  },
})

export const getUserContext = {
  method: 'get',
  path: '/api/v1/agent/users/:userId/context',
  operationId: 'getUserContext',
  summary: 'A user’s context',
  description:
    'Needs scope `context:read` and a grant for the user. Served from the isolate cache while fresh; when the database fails or its circuit is open the answer degrades (stale cache, else a basic answer) with `degraded: true` and `X-Degraded`, never to a 5xx.',
  tag: 'context',
  scope: 'context:read',
  request: { params: userIdParam, headers: contextHeaders },
  responses: {
    '200': {
      description: 'The context',
      ...contextAnswer(200),
      content: { 'application/json': { schema: userContextResponse, example: CONTEXT_EXAMPLE } },
    },
    '304': { description: 'Not modified (`If-None-Match`)', ...contextAnswer(304) },
    '400': problem(
      ['validation_failed'],
      '`userId` is longer than 128 characters, or holds U+0000 or an unpaired surrogate (answered alike whether or not such a user exists)',
    ),
    '404': problem(
      ['not_found'],
      'No such user, or no grant for it (indistinguishable); also a `userId` no user can have (U+0000, an unpaired surrogate), and a grant that cannot be confirmed while the database is down (never a degraded 200)',
    ),
    '503': unavailable(['configuration_error']),
  },
} as const satisfies Operation

export const contextOperations: readonly Operation[] = [getUserContext]

export const contextRoutes = new Hono<AppEnv>().get(
  getUserContext.path,
  authorize(getUserContext),
  validate(getUserContext),
  async (c) => {
    const { userId } = c.req.valid('param')
    // Pick up other isolates' invalidations (in the background, at most once per interval).
    c.get('services').progress.invalidations.poll(requestScope(c))
    const grant = await grantFor(c, c.get('agentId')!, userId)
    // A grant nobody can confirm (the database down, nothing cached) is no grant: the same 404,
    // never a degraded 200 that would confirm a user to an agent that may hold no grant for it.
    // (Development's mock data, when asked for, is no one's real data.)
    if (
      grant === 'denied' ||
      (grant === 'unknown' && !c.get('services').config.tunables.contextFallbackMock)
    ) {
      throw problems.notFound('No such user')
    }
    const served = await serve(c, userId, grant)
    // Unknown user and missing grant are the same 404: nothing tells them apart.
    if (served === 'not_found') throw problems.notFound('No such user')

    const degraded = served.degraded !== undefined
    const headers: Record<string, string> = {
      'Content-Type': 'application/json',
      'X-Cache': served.cacheStatus,
      'Cache-Control': degraded ? 'private, no-store' : `private, max-age=${served.maxAge}`,
    }
    if (served.etag && !degraded) headers.ETag = served.etag
    if (degraded) headers['X-Degraded'] = served.degraded!
    if (served.cacheStatus === 'HIT' || served.cacheStatus === 'STALE')
      c.get('trace').add('cache', 0)

    const ifNoneMatch = c.req.header('if-none-match')
    if (served.etag && !degraded && ifNoneMatch && matches(ifNoneMatch, served.etag)) {
      return c.body(null, 304, headers)
    }
    const cachedAt =
      served.cachedAt === null ? 'null' : `"${new Date(served.cachedAt).toISOString()}"`
    const body = `{${served.members},"source":"${served.source}","cached_at":${cachedAt},"degraded":${degraded}}`
    return c.body(body, 200, headers)
  },
)

/** RFC 9110 If-None-Match: weak comparison over a list (or "*"). */
function matches(header: string, etag: string): boolean {
  if (header.trim() === '*') return true
  const bare = etag.replace(/^W\//, '')
  return header.split(',').some((candidate) => candidate.trim().replace(/^W\//, '') === bare)
}
