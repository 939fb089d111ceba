// POST /api/v1/agent/token (RFC 6749 client credentials and refresh, plus the contract's JSON
// form) and POST /api/v1/agent/token/revoke (RFC 7009).
//
// Each route reads the request with its OAuth parser (src/auth/oauth/parse.ts), spends the
// failure budget (counted before credentials are checked, given back when the attempt
// succeeds: src/auth/oauth/budget.ts), makes one call (src/auth/oauth/token.ts) and writes
// the answer. Errors leave through this sub-app's own error handler, which answers them in
// OAuth's terms with the budget's RateLimit headers.
import { type Context, Hono } from 'hono'
import * as z from 'zod/mini'
import { countsAgainstBudget, spendFailureBudget } from '../auth/oauth/budget.ts'
import {
  noClientAuthentication,
  temporarilyUnavailable,
  withOAuthError,
} from '../auth/oauth/errors.ts'
import { type OAuthInput, parseRevokeRequest, parseTokenRequest } from '../auth/oauth/parse.ts'
import { authenticateClient, issueTokens, revoke } from '../auth/oauth/token.ts'
import { ProblemError } from '../contract/problem.ts'
import {
  jsonClientCredentials,
  jsonRefresh,
  jsonRevoke,
  revokeForm,
  revokeResponse,
  tokenForm,
  tokenResponse,
} from '../contract/token.ts'
import { authenticate, consumeAgentRequest, failClosed, isBearer } from '../http/auth.ts'
import type { AppEnv } from '../http/context.ts'
import { type Operation, RATE_LIMIT, type ResponseDoc } from '../http/operation.ts'
import { problemResponse } from '../http/problem.ts'
import { clientAddress, requestScope } from '../http/scope.ts'
import { rateLimitHeaders } from '../ratelimit/answers.ts'

// --- the operations ----------------------------------------------------------------------------

const LIMITS =
  'Failed requests count against per-(agent id, client address) and per-address limits; `RateLimit-*` headers report the tighter one.'

/** An OAuth error answer: the failure budget's RateLimit headers; a 401 names its scheme. */
const failure = (status: 400 | 401, problems: ResponseDoc['problems'], description: string) => ({
  description,
  problems,
  headers: status === 401 ? (['WWW-Authenticate'] as const) : [],
  optionalHeaders: RATE_LIMIT,
})

const OAUTH_RESPONSES = {
  '429': {
    description: 'Too many failed token requests for this agent id or client address',
    problems: ['rate_limited'],
    headers: ['Retry-After', ...RATE_LIMIT],
  },
} as const satisfies Operation['responses']

const TOKEN_EXAMPLE = {
  access_token: 'eyJhbGciOiJIUzI1NiIsInR5cCI6ImF0K2p3dCIsImtpZCI6ImN1cnJlbnQifQ.e30.c2ln',
  token_type: 'Bearer',
  expires_in: 900,
  expires_at: '2026-11-26T10:15:00.000Z',
  refresh_token: 'rt_7b1f0c2e.4ZxQ',
  refresh_expires_in: 86400,
  scope: 'context:read progress:write',
  environment: 'production',
}

export const issueToken = {
  method: 'post',
  path: '/api/v1/agent/token',
  operationId: 'issueToken',
  summary: 'Issue tokens (client credentials or refresh)',
  description: `JSON \`{ agent_id, agent_secret, scope? }\`, RFC 6749 client credentials (form; \`client_id\`/\`client_secret\` in the body or HTTP Basic), or a refresh (form or JSON) with client authentication (RFC 6749 §6: Basic, or the body's credentials). Refresh tokens rotate and belong to the environment that issued them; re-using a spent one revokes its whole family and the access tokens it issued. Empty form parameters count as omitted (RFC 6749 §3.2). ${LIMITS}`,
  tag: 'tokens',
  security: [{}, { clientBasic: [] }],
  request: {
    body: {
      description: 'JSON or form-encoded',
      content: {
        'application/json': {
          schema: z.xor([jsonClientCredentials, jsonRefresh]),
          examples: {
            clientCredentials: {
              summary: 'Client credentials',
              value: {
                agent_id: 'demo-agent',
                agent_secret: 'the-agent-secret',
                scope: 'context:read progress:write',
              },
            },
            refresh: {
              summary: 'Refresh',
              value: { grant_type: 'refresh_token', refresh_token: 'rt_7b1f0c2e.4ZxQ' },
            },
          },
        },
        'application/x-www-form-urlencoded': {
          schema: tokenForm,
          example: {
            grant_type: 'client_credentials',
            client_id: 'demo-agent',
            client_secret: 'the-agent-secret',
          },
        },
      },
    },
  },
  responses: {
    '200': {
      description: 'Tokens',
      headers: [...RATE_LIMIT, 'Pragma'],
      content: { 'application/json': { schema: tokenResponse, example: TOKEN_EXAMPLE } },
    },
    '400': failure(
      400,
      [
        'invalid_request',
        'unsupported_grant_type',
        'invalid_scope',
        'invalid_grant',
        'invalid_json',
      ],
      'The request is malformed or the grant is not valid',
    ),
    '401': failure(401, ['invalid_client'], 'Client authentication failed'),
    ...OAUTH_RESPONSES,
    '503': {
      description: 'Unavailable: nothing was done; retry after `Retry-After` seconds',
      problems: ['configuration_error', 'database_unavailable'],
      headers: ['Retry-After'],
      optionalHeaders: RATE_LIMIT,
    },
  },
} as const satisfies Operation

export const revokeToken = {
  method: 'post',
  path: '/api/v1/agent/token/revoke',
  operationId: 'revokeToken',
  summary: 'Revoke a token (RFC 7009)',
  description: `Revokes a refresh token (with its whole family and every access token the family issued), an access token or an access token’s \`jti\`. \`token_type_hint\` is only a hint: every type is searched (RFC 7009 §2.1). Authenticated with the agent’s credentials (body or Basic) or a valid access token of the same agent, and counted against the agent’s request limit. \`200\` for a well-formed request, also for a token that is unknown or another agent’s: it means the token no longer works anywhere. When the shared revocation store fails, \`503 revocation_partial\` says the revocation holds on the answering instance only. ${LIMITS}`,
  tag: 'tokens',
  security: [{ clientBasic: [] }, { bearerAuth: [] }, {}],
  request: {
    body: {
      description: 'JSON or form-encoded',
      content: {
        'application/json': {
          schema: jsonRevoke,
          example: { token: 'rt_7b1f0c2e.4ZxQ', token_type_hint: 'refresh_token' },
        },
        'application/x-www-form-urlencoded': {
          schema: revokeForm,
          example: { token: 'rt_7b1f0c2e.4ZxQ' },
        },
      },
    },
  },
  responses: {
    '200': {
      description: 'Revoked (or nothing to revoke)',
      headers: RATE_LIMIT,
      content: { 'application/json': { schema: revokeResponse, example: {} } },
    },
    '400': failure(
      400,
      ['invalid_request', 'invalid_json'],
      'The request is malformed or credentials were sent twice',
    ),
    '401': failure(
      401,
      ['invalid_client', 'invalid_token'],
      'Neither valid client credentials nor a valid access token',
    ),
    ...OAUTH_RESPONSES,
    '503': {
      description:
        'Unavailable; retry after `Retry-After` seconds. `…_unavailable`: nothing was revoked. `revocation_partial`: revoked on the answering instance only (and a refresh token in Postgres). `outcome_unknown`: the token store timed out, the revocation may have landed.',
      problems: [
        'configuration_error',
        'database_unavailable',
        'revocation_unavailable',
        'revocation_partial',
        'outcome_unknown',
      ],
      headers: ['Retry-After'],
      optionalHeaders: RATE_LIMIT,
    },
  },
} as const satisfies Operation

export const tokenOperations: readonly Operation[] = [issueToken, revokeToken]

// --- the routes ---------------------------------------------------------------------------------

/** What the parsers read of a request; its body only when its media type is one they take. */
const oauthInput = (c: Context<AppEnv>): OAuthInput => ({
  contentType: c.req.header('content-type'),
  authorization: c.req.header('authorization'),
  body: () => c.req.text(),
})

/**
 * Fail closed on a bad configuration, then spend the failure budget of the client the request
 * names (a request that does not parse still counts), then throw what parsing found wrong.
 */
async function admit<R extends { credentials?: { agentId: string } }>(
  c: Context<AppEnv>,
  parsed: { request: R } | { error: ProblemError },
): Promise<R> {
  const services = c.get('services')
  const request = 'request' in parsed ? parsed.request : undefined
  const budget = await spendFailureBudget(
    services,
    {
      clientKey: request?.credentials?.agentId || undefined,
      address: clientAddress(c.req.raw.headers, services.platform),
    },
    requestScope(c),
  )
  c.set('failureBudget', budget)
  if (!request) throw 'error' in parsed ? parsed.error : new Error('unparsed')
  return request
}

function closed(c: Context<AppEnv>): void {
  const problem = failClosed(c)?.problem
  if (problem) throw temporarilyUnavailable(problem.code, problem.detail ?? '', 300)
}

/** A success: the budget given back; the budget's RateLimit headers unless the agent's speak. */
async function answer(c: Context<AppEnv>, response: Response): Promise<Response> {
  const budget = c.get('failureBudget')
  if (!budget) return response
  await budget.refund()
  if (!response.headers.has('RateLimit-Limit')) {
    const headers = rateLimitHeaders(budget.decision, c.get('services').clock.now())
    for (const [name, value] of Object.entries(headers)) response.headers.set(name, value)
  }
  return response
}

export const tokenRoutes = new Hono<AppEnv>()
  .post(issueToken.path, async (c) => {
    closed(c)
    const request = await admit(c, await parseTokenRequest(oauthInput(c)))
    const body = await issueTokens(c.get('services'), request, requestScope(c), (agentId) =>
      c.set('agentId', agentId),
    )
    return answer(c, c.json(body, 200, { 'Cache-Control': 'no-store', Pragma: 'no-cache' }))
  })
  .post(revokeToken.path, async (c) => {
    closed(c)
    const request = await admit(c, await parseRevokeRequest(oauthInput(c)))
    const services = c.get('services')
    // Authenticated as the agent by its credentials, or by an access token of its own.
    let agentId: string
    if (request.credentials) {
      agentId = (await authenticateClient(services, request.credentials, requestScope(c))).id
    } else if (isBearer(c.req.header('authorization'))) {
      agentId = (await authenticate(c)).sub
    } else {
      throw noClientAuthentication()
    }
    c.set('agentId', agentId)
    // Revocations are requests of the agent like any other: inside its request limit.
    await consumeAgentRequest(c, agentId)
    await revoke(services, agentId, request.token, requestScope(c))
    return answer(c, c.json({}, 200, { 'Cache-Control': 'no-store' }))
  })
  .onError(async (err, c) => {
    // The attempt's budget: kept when it failed by the client's fault, else given back.
    const budget = c.get('failureBudget')
    const status = err instanceof ProblemError ? err.problem.status : 500
    if (budget && !countsAgainstBudget(status)) await budget.refund()
    if (!(err instanceof ProblemError)) throw err // the app's boundary: a logged 500
    const problem =
      status < 500
        ? {
            ...err.problem,
            headers: {
              ...(budget && rateLimitHeaders(budget.decision, c.get('services').clock.now())),
              ...err.problem.headers,
            },
            extensions: withOAuthError(err.problem),
          }
        : err.problem
    return problemResponse(c, problem, c.get('requestId'))
  })
