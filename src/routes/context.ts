// GET /api/v1/agent/users/{userId}/context — scope context:read. The rules (grant, cache,
// fallback ladder) are src/users/service.ts's; this route writes the answer: its caching
// headers, `X-Degraded`, a 304 for a matching If-None-Match, the body around the cached JSON.
import { type Context, Hono } from 'hono'
import {
  contextAnswerText,
  contextHeaders,
  userContextResponse,
  userIdParam,
} from '../contract/context.ts'
import type { AppEnv } from '../http/context.ts'
import { type HeaderRecord, respond } from '../http/headers.ts'
import {
  type HeaderName,
  type Operation,
  problem,
  RATE_LIMIT,
  type ResponseDoc,
  unavailable,
} from '../http/operation.ts'
import { requestScope } from '../http/scope.ts'
import { authorize, validate } from '../http/validate.ts'
import { contextFor, type ServedContext } from '../users/service.ts'

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
    '503': unavailable(['configuration_error', 'auth_unavailable']),
  },
} as const satisfies Operation

export const contextOperations: readonly Operation[] = [getUserContext]

/**
 * The operation's one service call, for the request's authenticated principal. The MCP tool
 * `get_user_context` makes this same call, so both surfaces share every rule.
 */
export function readUserContext(
  c: Context<AppEnv>,
  userId: string,
  bypass: boolean,
): Promise<ServedContext> {
  return contextFor(
    c.get('services'),
    { agentId: c.get('agentId')!, userId, bypass },
    requestScope(c),
    c.get('log'),
  )
}

/** The 200 body of a served context, as text (the cached members are embedded as they are). */
export function contextBody(served: ServedContext): string {
  return contextAnswerText(
    served.members,
    served.source,
    served.cachedAt,
    served.degraded !== undefined,
  )
}

export const contextRoutes = new Hono<AppEnv>().get(
  getUserContext.path,
  authorize(getUserContext),
  validate(getUserContext),
  async (c) => {
    const { userId } = c.req.valid('param')
    const bypass = /\bno-cache\b/i.test(c.req.header('cache-control') ?? '')
    const served = await readUserContext(c, userId, bypass)
    const degraded = served.degraded !== undefined
    const headers: HeaderRecord = {
      'content-type': 'application/json',
      'x-cache': served.cacheStatus,
      'cache-control': degraded ? 'private, no-store' : `private, max-age=${served.maxAge}`,
    }
    if (served.etag && !degraded) headers.etag = served.etag
    if (degraded) headers['x-degraded'] = served.degraded!

    const ifNoneMatch = c.req.header('if-none-match')
    if (served.etag && !degraded && ifNoneMatch && matches(ifNoneMatch, served.etag)) {
      return respond(c, null, 304, headers)
    }
    // A fresh hit's body was built once, when its entry was stored (src/users/context.ts).
    const built = served.source === 'cache' && !degraded ? served.body : undefined
    return respond(c, built ?? contextBody(served), 200, headers)
  },
)

/** RFC 9110 If-None-Match: weak comparison over a list (or "*"). */
function matches(header: string, etag: string): boolean {
  if (header.trim() === '*') return true
  const bare = etag.replace(/^W\//, '')
  return header.split(',').some((candidate) => candidate.trim().replace(/^W\//, '') === bare)
}
