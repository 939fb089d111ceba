// POST /api/v1/agent/token (RFC 6749 client credentials and refresh, plus the contract's JSON
// form, RFC 8707 resources), POST /api/v1/agent/token/revoke (RFC 7009), POST
// /api/v1/agent/token/introspect (RFC 7662), and GET /api/v1/agent/authorize, which exists only
// to refuse (clients that insist on an authorization endpoint in the metadata find one).
//
// Each route reads the request with its OAuth parser (src/auth/oauth/parse.ts), spends the
// failure budget (counted before credentials are checked, given back when the attempt
// succeeds, or fails after the client authenticated: src/auth/oauth/budget.ts), makes one call
// (src/auth/oauth/) and writes the answer. Errors leave through this sub-app's own error
// handler, which answers them as RFC 6749 §5.2 wants (`application/json`, `error`,
// `error_description`) with the problem members beside them and the budget's RateLimit headers.
import { type Context, Hono } from 'hono'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import * as z from 'zod/mini'
import { AUTHORIZE_PATH, INTROSPECT_PATH, REVOKE_PATH, TOKEN_PATH } from '../auth/metadata.ts'
import { countsAgainstBudget, spendFailureBudget } from '../auth/oauth/budget.ts'
import {
  noClientAuthentication,
  oauthError,
  temporarilyUnavailable,
  withOAuthError,
} from '../auth/oauth/errors.ts'
import { introspect } from '../auth/oauth/introspect.ts'
import {
  type OAuthInput,
  parseIntrospectRequest,
  parseRevokeRequest,
  parseTokenRequest,
} from '../auth/oauth/parse.ts'
import { authenticateClient, issueTokens, revoke } from '../auth/oauth/token.ts'
import { ProblemError, problemBody } from '../contract/problem.ts'
import {
  ACCESS_TOKEN_TYPE,
  introspectForm,
  introspectionResponse,
  jsonClientCredentials,
  jsonIntrospect,
  jsonRefresh,
  jsonRevoke,
  jsonTokenExchange,
  revokeForm,
  revokeResponse,
  TOKEN_EXCHANGE_GRANT,
  tokenForm,
  tokenResponse,
} from '../contract/token.ts'
import { authenticate, consumeAgentRequest, failClosed, isBearer, issuerFor } from '../http/auth.ts'
import type { AppEnv } from '../http/context.ts'
import { preparedHeader } from '../http/headers.ts'
import { type Operation, RATE_LIMIT, type ResponseDoc } from '../http/operation.ts'
import { clientAddress, requestScope } from '../http/scope.ts'
import { rateLimitHeaders } from '../ratelimit/answers.ts'

// --- the operations ----------------------------------------------------------------------------

const LIMITS =
  'Failed requests count against per-(agent id, client address) and per-address limits; `RateLimit-*` headers report the tighter one.'

const OAUTH_JSON = 'application/json' as const

/** An OAuth error answer: the failure budget's RateLimit headers; a 401 names its scheme. */
const failure = (
  status: 400 | 401,
  problems: ResponseDoc['problems'],
  description: string,
): ResponseDoc => ({
  description,
  problems,
  problemMediaType: OAUTH_JSON,
  headers: status === 401 ? (['WWW-Authenticate'] as const) : [],
  optionalHeaders: RATE_LIMIT,
})

const OAUTH_RESPONSES = {
  '500': {
    description: 'A bug (never bad input): the answer has no internals; OAuth `server_error`',
    problems: ['internal_error'],
    problemMediaType: OAUTH_JSON,
    optionalHeaders: RATE_LIMIT,
  },
  '415': {
    description: 'Wrong `Content-Type`',
    problems: ['unsupported_media_type'],
    problemMediaType: OAUTH_JSON,
    headers: ['Accept-Post'],
    optionalHeaders: RATE_LIMIT,
  },
  '429': {
    description: 'Too many failed token requests for this agent id or client address',
    problems: ['rate_limited'],
    problemMediaType: OAUTH_JSON,
    headers: ['Retry-After', ...RATE_LIMIT],
  },
} as const satisfies Operation['responses']

/** A 503 of the OAuth endpoints (OAuth's `temporarily_unavailable`). */
const oauthUnavailable = (
  problems: NonNullable<ResponseDoc['problems']>,
  description = 'Unavailable: nothing was done; retry after `Retry-After` seconds',
): ResponseDoc => ({
  description,
  problems,
  problemMediaType: OAUTH_JSON,
  headers: ['Retry-After'],
  optionalHeaders: RATE_LIMIT,
})

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
  path: TOKEN_PATH,
  operationId: 'issueToken',
  summary: 'Issue tokens (client credentials, refresh, token exchange)',
  description: `JSON \`{ agent_id, agent_secret, scope?, resource? }\`, RFC 6749 client credentials (form; \`client_id\`/\`client_secret\` in the body or HTTP Basic, or RFC 7523 \`private_key_jwt\`: \`client_assertion_type\` + \`client_assertion\`, the only method for an agent that registered a key), or a refresh (form or JSON) with client authentication (RFC 6749 §6: Basic, or the body's credentials). RFC 8693 token exchange (form or JSON): the agent's access token as \`subject_token\` (or \`actor_token\`) and the user as \`requested_subject\` give a token with \`sub\` = the user, \`act.sub\` = the agent, at most the presented token's scope and lifetime (and \`DELEGATED_TOKEN_TTL_SECONDS\`), no refresh token; an unknown user and one without a grant are one \`invalid_grant\`; a delegated token is exchanged only for its own user. \`resource\` (RFC 8707, one per request) names what the access token is for, its \`aud\`: this API (the default) or its MCP endpoint; RFC 8693 \`audience\` names the same targets by the same identifiers, on every grant. Refresh tokens rotate and belong to the environment that issued them. The previous refresh token presented again within \`REFRESH_REUSE_GRACE_SECONDS\` of its first use, while its successor is unused, gets a fresh pair and retires that successor (a lost answer is not a theft); any other re-use revokes the whole family and the access tokens it issued. Empty form parameters count as omitted (RFC 6749 §3.2). Errors are \`application/json\` (RFC 6749 §5.2): \`error\`, \`error_description\` and the problem members. ${LIMITS}`,
  tag: 'tokens',
  security: [{}, { clientBasic: [] }],
  request: {
    body: {
      description: 'JSON or form-encoded',
      content: {
        'application/json': {
          schema: z.xor([jsonClientCredentials, jsonRefresh, jsonTokenExchange]),
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
            tokenExchange: {
              summary: 'Token exchange (RFC 8693): act for one user',
              value: {
                grant_type: TOKEN_EXCHANGE_GRANT,
                subject_token: TOKEN_EXAMPLE.access_token,
                subject_token_type: ACCESS_TOKEN_TYPE,
                requested_subject: 'demo-user-1',
                scope: 'context:read',
              },
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
        'invalid_target',
        'invalid_json',
        'invalid_dpop_proof',
        'use_dpop_nonce',
      ],
      'The request is malformed, the grant is not valid, the resource is not this server’s, or the DPoP proof is missing (required for the agent), invalid or replayed',
    ),
    '401': failure(401, ['invalid_client'], 'Client authentication failed'),
    ...OAUTH_RESPONSES,
    '503': oauthUnavailable(
      ['configuration_error', 'database_unavailable', 'outcome_unknown', 'auth_unavailable'],
      'Unavailable; retry after `Retry-After` seconds. `…_unavailable`: nothing was done (`auth_unavailable`: a presented token or proof could not be checked: neither Redis nor Postgres answered, or the isolate’s one-time-proof record is full). `outcome_unknown`: the token store did not answer a write that it may have made; the detail says how to retry (a refresh: the same refresh token, within `REFRESH_REUSE_GRACE_SECONDS`).',
    ),
  },
} as const satisfies Operation

export const revokeToken = {
  method: 'post',
  path: REVOKE_PATH,
  operationId: 'revokeToken',
  summary: 'Revoke a token (RFC 7009)',
  description: `Revokes a refresh token (with its whole family and every access token the family issued), an access token or an access token’s \`jti\`. \`token_type_hint\` is only a hint: every type is searched (RFC 7009 §2.1). Authenticated with the agent’s credentials (body, Basic, or an RFC 7523 \`client_assertion\` for a key-bound agent) or a valid access token of the same agent (not a delegated one: RFC 8693 tokens act for a user, not as the agent), and counted against the agent’s request limit. \`200\` for a well-formed request, also for a token that is unknown or another agent’s: it means the token no longer works anywhere. When Redis or Postgres fails to take it, \`503 revocation_partial\` says it holds on the answering instance and in whichever store took it. ${LIMITS}`,
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
      'Neither valid client credentials nor a valid access token of the agent (a delegated token is no credential)',
    ),
    ...OAUTH_RESPONSES,
    '503': oauthUnavailable(
      [
        'configuration_error',
        'database_unavailable',
        'revocation_unavailable',
        'revocation_partial',
        'outcome_unknown',
        'auth_unavailable',
      ],
      'Unavailable; retry after `Retry-After` seconds. `…_unavailable`: nothing was revoked (`auth_unavailable`: a bearer token could not be checked against revocations because neither Redis nor Postgres answered). `revocation_partial`: Redis or Postgres failed to take it; it holds on the answering instance and in whichever store took it. `outcome_unknown`: the token store timed out, the revocation may have landed.',
    ),
  },
} as const satisfies Operation

export const introspectToken = {
  method: 'post',
  path: INTROSPECT_PATH,
  operationId: 'introspectToken',
  summary: 'Introspect a token (RFC 7662)',
  description: `For resource servers that cannot verify the JWTs themselves. The caller authenticates as a client (HTTP Basic, the body’s credentials, or an RFC 7523 \`client_assertion\`) and learns about its own tokens only: an access or refresh token of its own that works now is described; anything else — unknown, expired, revoked, malformed, another agent’s — is \`{ "active": false }\`. \`token_type_hint\` is only a hint. Counted against the agent’s request limit. ${LIMITS}`,
  tag: 'tokens',
  security: [{ clientBasic: [] }, {}],
  request: {
    body: {
      description: 'JSON or form-encoded',
      content: {
        'application/json': {
          schema: jsonIntrospect,
          example: { token: 'eyJhbGciOiJFUzI1NiJ9.e30.c2ln', token_type_hint: 'access_token' },
        },
        'application/x-www-form-urlencoded': {
          schema: introspectForm,
          example: { token: 'rt_7b1f0c2e.4ZxQ' },
        },
      },
    },
  },
  responses: {
    '200': {
      description: 'What the token is, or `{ "active": false }`',
      headers: RATE_LIMIT,
      content: {
        'application/json': {
          schema: introspectionResponse,
          example: {
            active: true,
            token_type: 'Bearer',
            scope: 'context:read progress:write',
            client_id: 'demo-agent',
            sub: 'demo-agent',
            aud: 'https://api.example.com',
            iss: 'https://api.example.com',
            exp: 1795000000,
            iat: 1794999100,
            nbf: 1794999100,
            jti: '0b6f5d8e-2f4c-4f3e-9a51-0d3f1b8c2a77',
          },
        },
      },
    },
    '400': failure(400, ['invalid_request', 'invalid_json'], 'The request is malformed'),
    '401': failure(401, ['invalid_client'], 'Client authentication failed'),
    ...OAUTH_RESPONSES,
    '503': oauthUnavailable(
      ['configuration_error', 'database_unavailable', 'auth_unavailable'],
      'Unavailable: nothing was done; retry after `Retry-After` seconds (`auth_unavailable`: a client assertion could not be recorded as used: the isolate’s one-time-proof record is full while Redis fails).',
    ),
  },
} as const satisfies Operation

export const authorize = {
  method: 'get',
  path: AUTHORIZE_PATH,
  operationId: 'authorize',
  summary: 'No grant uses an authorization endpoint here',
  description:
    'Agents get tokens with client credentials (`response_types_supported` is empty). The metadata names this endpoint for clients that require the member; every request is refused with OAuth’s `unsupported_response_type`, without a redirect (no redirection URI is registered).',
  tag: 'tokens',
  responses: {
    '400': {
      description: 'Refused',
      problems: ['unsupported_response_type'],
      problemMediaType: OAUTH_JSON,
    },
  },
} as const satisfies Operation

export const tokenOperations: readonly Operation[] = [
  issueToken,
  revokeToken,
  introspectToken,
  authorize,
]

// --- the routes ---------------------------------------------------------------------------------

/** What the parsers read of a request; its body only when its media type is one they take. */
const oauthInput = (c: Context<AppEnv>): OAuthInput => ({
  contentType: c.req.header('content-type'),
  authorization: c.req.header('authorization'),
  // UTF-8 with replacement, exactly what .text() does; but workerd warns on every .text() of
  // a form body ("does not appear to be text"), which no test run should have to print.
  body: async () => new TextDecoder().decode(await c.req.arrayBuffer()),
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
  if (!response.headers.has('RateLimit-Limit') && !preparedHeader(c, 'ratelimit-limit')) {
    const headers = rateLimitHeaders(budget.decision, c.get('services').clock.now())
    for (const [name, value] of Object.entries(headers)) response.headers.set(name, value)
  }
  return response
}

/** The client authenticated: a refusal from here on is no guess at its credentials. */
function authenticated(c: Context<AppEnv>, agentId: string): void {
  c.set('agentId', agentId)
  c.set('clientAuthenticated', true)
}

/** An OAuth endpoint's error: `application/json` with OAuth's members (RFC 6749 §5.2). */
function oauthResponse(c: Context<AppEnv>, problem: ProblemError['problem']): Response {
  const status = problem.status as ContentfulStatusCode
  return c.body(JSON.stringify(problemBody(problem, c.get('requestId'))), status, {
    ...problem.headers,
    'Content-Type': OAUTH_JSON,
    'Cache-Control': 'no-store',
  })
}

export const tokenRoutes = new Hono<AppEnv>()
  .post(issueToken.path, async (c) => {
    closed(c)
    const request = await admit(c, await parseTokenRequest(oauthInput(c)))
    const body = await issueTokens(c.get('services'), request, requestScope(c), {
      issuer: issuerFor(c),
      onClient: (agentId) => authenticated(c, agentId),
      dpopProof: c.req.header('dpop'),
    })
    return answer(c, c.json(body, 200, { 'Cache-Control': 'no-store', Pragma: 'no-cache' }))
  })
  .post(revokeToken.path, async (c) => {
    closed(c)
    const request = await admit(c, await parseRevokeRequest(oauthInput(c)))
    const services = c.get('services')
    // Authenticated as the agent by its credentials, or by an access token of its own.
    let agentId: string
    if (request.credentials) {
      agentId = (
        await authenticateClient(services, request.credentials, requestScope(c), issuerFor(c))
      ).id
    } else if (isBearer(c.req.header('authorization'))) {
      const claims = await authenticate(c, 'any')
      // A delegated token (RFC 8693) acts for one user: it is no credential of its agent, and
      // must not end the agent's other tokens.
      if (claims.act) {
        throw oauthError(
          'invalid_client',
          'A delegated token cannot authenticate a revocation: use the agent’s credentials or its own token',
        )
      }
      agentId = claims.client_id
    } else {
      throw noClientAuthentication()
    }
    authenticated(c, agentId)
    // Revocations are requests of the agent like any other: inside its request limit.
    await consumeAgentRequest(c, agentId)
    await revoke(services, agentId, request.token, requestScope(c), issuerFor(c))
    return answer(c, c.json({}, 200, { 'Cache-Control': 'no-store' }))
  })
  .post(introspectToken.path, async (c) => {
    closed(c)
    const request = await admit(c, await parseIntrospectRequest(oauthInput(c)))
    const services = c.get('services')
    if (!request.credentials) {
      throw oauthError('invalid_client', 'Authenticate with client credentials')
    }
    const agentId = (
      await authenticateClient(services, request.credentials, requestScope(c), issuerFor(c))
    ).id
    authenticated(c, agentId)
    await consumeAgentRequest(c, agentId)
    const body = await introspect(services, agentId, request.token, requestScope(c), issuerFor(c))
    return answer(c, c.json(body, 200, { 'Cache-Control': 'no-store' }))
  })
  .get(authorize.path, () => {
    throw oauthError(
      'unsupported_response_type',
      'No grant here uses an authorization endpoint: use the client credentials grant at the token endpoint',
    )
  })
  .onError(async (err, c) => {
    // The attempt's budget: kept when it failed by the client's fault before it authenticated,
    // else given back (a grant refused after the client authenticated is no guess).
    const budget = c.get('failureBudget')
    const status = err instanceof ProblemError ? err.problem.status : 500
    if (budget && (!countsAgainstBudget(status) || c.get('clientAuthenticated'))) {
      await budget.refund()
    } else {
      budget?.settle()
    }
    if (!(err instanceof ProblemError)) {
      // A bug or an outage nobody classified: logged by name, answered without internals.
      c.get('log').error('unhandled error', { error: err })
      return oauthResponse(c, {
        status: 500,
        code: 'internal_error',
        detail: 'An unexpected error occurred',
        extensions: { error: 'server_error', error_description: 'An unexpected error occurred' },
      })
    }
    const headers = {
      ...(status < 500 &&
        budget &&
        rateLimitHeaders(budget.decision, c.get('services').clock.now())),
      ...err.problem.headers,
    }
    return oauthResponse(c, { ...err.problem, headers, extensions: withOAuthError(err.problem) })
  })
