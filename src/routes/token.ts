// POST /api/v1/agent/token (RFC 6749 client credentials and refresh, plus the contract's JSON
// form) and POST /api/v1/agent/token/revoke (RFC 7009).
//
// Every attempt is counted against the failure budgets before credentials are checked, and
// given back when it succeeds (src/http/failure-budget.ts); a locked-out guesser learns
// nothing more. Every string is checked storable before anything reaches a store.
import { type Context, Hono } from 'hono'
import * as z from 'zod/mini'
import { issueAccessToken, TokenError, verifyAccessToken } from '../auth/access-token.ts'
import { issuedAtFor } from '../auth/agent-status.ts'
import { authenticateAgent } from '../auth/credentials.ts'
import {
  issueRefreshToken,
  looksLikeRefreshToken,
  revokeRefreshToken,
  rotateRefreshToken,
} from '../auth/refresh-token.ts'
import { type RevocationReach, RevocationStoreFull } from '../auth/revocation.ts'
import { formatScopes, grantScopes, parseScopes } from '../auth/scopes.ts'
import { fieldErrors } from '../contract/field-errors.ts'
import { type FieldError, ProblemError, problems } from '../contract/problem.ts'
import type { ProblemCode } from '../contract/problems.ts'
import {
  jsonClientCredentials,
  jsonRefresh,
  jsonRevoke,
  type OAuthError,
  revokeForm,
  revokeResponse,
  type TokenResponse,
  tokenForm,
  tokenResponse,
} from '../contract/token.ts'
import { isDatabaseOutage } from '../db/client.ts'
import {
  authenticate,
  consumeAgentRequest,
  failClosed,
  isBearer,
  rateLimitHeaders,
} from '../http/auth.ts'
import { isJsonMediaType, mediaType, parseJson } from '../http/body.ts'
import type { AppEnv } from '../http/context.ts'
import { type FailureBudget, spendFailureBudget } from '../http/failure-budget.ts'
import { type Operation, RATE_LIMIT, type ResponseDoc } from '../http/operation.ts'
import { requestScope } from '../http/scope.ts'

const FORM = 'application/x-www-form-urlencoded'
const JSON_TYPE = 'application/json'

type Credentials = { agentId: string; secret: string }

type TokenRequest =
  | { grant: 'client_credentials'; credentials: Credentials; scope?: string }
  | { grant: 'refresh_token'; refreshToken: string; scope?: string; credentials?: Credentials }

const OAUTH_STATUS: Record<OAuthError, number> = {
  invalid_request: 400,
  invalid_client: 401,
  invalid_grant: 400,
  unsupported_grant_type: 400,
  invalid_scope: 400,
}

const OAUTH_TITLE: Record<OAuthError, string> = {
  invalid_request: 'Invalid token request',
  invalid_client: 'Client authentication failed',
  invalid_grant: 'Invalid grant',
  unsupported_grant_type: 'Unsupported grant type',
  invalid_scope: 'Invalid scope',
}

function oauthError(error: OAuthError, description: string, errors?: FieldError[]): ProblemError {
  return new ProblemError({
    status: OAUTH_STATUS[error],
    code: error,
    title: OAUTH_TITLE[error],
    detail: description,
    errors,
    extensions: { error, error_description: description },
    // RFC 6749 §5.2: a failed client authentication names the scheme to use.
    headers:
      error === 'invalid_client' ? { 'WWW-Authenticate': 'Basic realm="agent-api"' } : undefined,
  })
}

/** 503 for the token endpoints, in OAuth's vocabulary as well as ours. */
function temporarilyUnavailable(
  code: ProblemCode,
  detail: string,
  retryAfter: number,
): ProblemError {
  const p = problems.unavailable(code, detail, retryAfter).problem
  return new ProblemError({
    ...p,
    extensions: { error: 'temporarily_unavailable', error_description: detail },
  })
}

const INVALID_CLIENT = 'Unknown agent, wrong secret, or inactive agent'

/**
 * Every error of the token endpoints speaks OAuth too (RFC 6749 §5.2): a malformed body or an
 * unsupported media type is `invalid_request`, whatever our own problem code says.
 */
function withOAuthError(problem: ProblemError['problem']): Record<string, unknown> {
  if (problem.extensions && 'error' in problem.extensions) return problem.extensions
  return {
    ...problem.extensions,
    // A limit says "not now" (as RFC 6749 §4.1.2.1 spells it), not "malformed".
    error: problem.status === 429 ? 'temporarily_unavailable' : 'invalid_request',
    error_description: problem.detail ?? problem.title ?? problem.code,
  }
}

// --- parsing ---------------------------------------------------------------------------------

const basicAgentId = jsonClientCredentials.shape.agent_id
const basicSecret = jsonClientCredentials.shape.agent_secret

/**
 * HTTP Basic client credentials (RFC 6749 §2.3.1: both parts form-urlencoded), the scheme name
 * in any case. Undecodable credentials are `invalid_client`; decodable ones that no store
 * could hold (a NUL, an unpaired surrogate, too long) are `invalid_request`, as in a body.
 */
function basicCredentials(header: string | undefined): Credentials | undefined {
  const match = header && /^Basic +([A-Za-z0-9+/=]+) *$/i.exec(header)
  if (!match?.[1]) {
    if (header && /^Basic(\s|$)/i.test(header)) {
      throw oauthError('invalid_client', 'Malformed Basic credentials')
    }
    return undefined
  }
  let decoded: string
  try {
    decoded = new TextDecoder('utf-8', { fatal: true }).decode(
      Uint8Array.from(atob(match[1]), (ch) => ch.charCodeAt(0)),
    )
  } catch {
    throw oauthError('invalid_client', 'Malformed Basic credentials')
  }
  const colon = decoded.indexOf(':')
  if (colon < 1) throw oauthError('invalid_client', 'Malformed Basic credentials')
  const decode = (part: string) => {
    try {
      return decodeURIComponent(part.replaceAll('+', ' '))
    } catch {
      throw oauthError('invalid_client', 'Malformed Basic credentials')
    }
  }
  const agentId = decode(decoded.slice(0, colon))
  const secret = decode(decoded.slice(colon + 1))
  const errors: FieldError[] = []
  for (const [path, schema, value] of [
    ['Authorization.client_id', basicAgentId, agentId],
    ['Authorization.client_secret', basicSecret, secret],
  ] as const) {
    const result = schema.safeParse(value)
    if (!result.success) {
      errors.push(...fieldErrors(result.error.issues).map((e) => ({ ...e, path })))
    }
  }
  if (errors.length)
    throw oauthError('invalid_request', 'The Basic credentials are not valid', errors)
  return { agentId, secret }
}

/**
 * Form fields, refusing repeated parameters (RFC 6749 §3.2) and over-long values. A parameter
 * sent with an empty value is treated as omitted (RFC 6749 §3.1, §3.2).
 */
function formFields(text: string): Record<string, string> {
  const fields: Record<string, string> = {}
  for (const [key, value] of new URLSearchParams(text)) {
    if (value === '') continue
    if (key in fields) throw oauthError('invalid_request', `Parameter ${key} is repeated`)
    if (value.length > 8192) throw oauthError('invalid_request', `Parameter ${key} is too long`)
    fields[key] = value
  }
  return fields
}

function validated<S extends z.ZodMiniType>(schema: S, value: unknown): z.output<S> {
  const result = schema.safeParse(value)
  if (!result.success) {
    throw oauthError(
      'invalid_request',
      'The request body is not valid',
      fieldErrors(result.error.issues),
    )
  }
  return result.data
}

const TOKEN_FORM_FIELDS = z.omit(tokenForm, { grant_type: true })

/** Credentials from the body and from Basic: one of them, never both. */
function oneOf(inBody: Credentials | undefined, basic: Credentials | undefined) {
  if (inBody && basic) {
    throw oauthError('invalid_request', 'Send credentials once: in the body or by Basic')
  }
  return basic ?? inBody
}

function bodyCredentials(id: string | undefined, secret: string | undefined) {
  return id !== undefined || secret !== undefined
    ? { agentId: id ?? '', secret: secret ?? '' }
    : undefined
}

async function readTokenRequest(c: Context<AppEnv>): Promise<TokenRequest> {
  const type = mediaType(c.req.header('content-type'))
  const basic = basicCredentials(c.req.header('authorization'))

  if (isJsonMediaType(type)) {
    const body = parseJson(await c.req.text())
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      throw oauthError('invalid_request', 'The body must be a JSON object')
    }
    const grantType = (body as { grant_type?: unknown }).grant_type
    if (grantType === 'refresh_token') {
      const req = validated(jsonRefresh, body)
      return {
        grant: 'refresh_token',
        refreshToken: req.refresh_token,
        scope: req.scope,
        credentials: oneOf(bodyCredentials(req.agent_id, req.agent_secret), basic),
      }
    }
    if (grantType !== undefined && grantType !== 'client_credentials') {
      throw oauthError('unsupported_grant_type', 'Use client_credentials or refresh_token')
    }
    if (basic) throw oauthError('invalid_request', 'Send credentials once: in the body or by Basic')
    const req = validated(jsonClientCredentials, body)
    return {
      grant: 'client_credentials',
      credentials: { agentId: req.agent_id, secret: req.agent_secret },
      scope: req.scope,
    }
  }

  if (type === FORM) {
    const fields = formFields(await c.req.text())
    // Held to the JSON body's schemas; grant_type is checked below, in OAuth's order.
    validated(TOKEN_FORM_FIELDS, fields)
    const scope = fields.scope
    const credentials = oneOf(bodyCredentials(fields.client_id, fields.client_secret), basic)
    switch (fields.grant_type) {
      case undefined:
        throw oauthError('invalid_request', 'grant_type is required', [
          { path: 'grant_type', message: 'Required' },
        ])
      case 'client_credentials':
        if (!credentials?.agentId || !credentials.secret) {
          throw oauthError('invalid_client', 'Client credentials are required')
        }
        return { grant: 'client_credentials', credentials, scope }
      case 'refresh_token':
        if (!fields.refresh_token) {
          throw oauthError('invalid_request', 'refresh_token is required', [
            { path: 'refresh_token', message: 'Required' },
          ])
        }
        return { grant: 'refresh_token', refreshToken: fields.refresh_token, scope, credentials }
      default:
        throw oauthError('unsupported_grant_type', 'Use client_credentials or refresh_token')
    }
  }

  throw problems.unsupportedMediaType([JSON_TYPE, FORM])
}

// --- the token store ---------------------------------------------------------------------------

function requireDatabase(c: Context<AppEnv>) {
  const { db } = c.get('services')
  if (!db) throw temporarilyUnavailable('database_unavailable', 'No database is configured', 30)
  return db
}

/**
 * Database outages on the token path are 503s, never a 401 that blames the agent. A write that
 * timed out may have landed: `outcome_unknown` says so. Anything else (a rejected statement) is
 * a defect: it goes on to the 500 handler, which logs it.
 */
async function databaseCall<T>(work: () => Promise<T>, write = false): Promise<T> {
  try {
    return await work()
  } catch (err) {
    if (err instanceof ProblemError || !isDatabaseOutage(err)) throw err
    const timedOut =
      err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')
    if (write && timedOut) {
      throw temporarilyUnavailable(
        'outcome_unknown',
        'The token store timed out: the revocation may or may not have been made; retry it',
        5,
      )
    }
    throw temporarilyUnavailable('database_unavailable', 'The token store is unavailable', 5)
  }
}

/** The agent `credentials` name, if they are right and it is active; else 401 invalid_client. */
async function authenticateClient(c: Context<AppEnv>, credentials: Credentials) {
  const services = c.get('services')
  const db = requireDatabase(c)
  const agent = await databaseCall(() =>
    authenticateAgent(
      db,
      services.config.agentSecret!,
      credentials.agentId,
      credentials.secret,
      requestScope(c),
    ),
  )
  if (!agent) throw oauthError('invalid_client', INVALID_CLIENT)
  services.auth.agents.remember(
    agent.id,
    { active: true, tokensNotBefore: agent.tokensNotBefore },
    services.clock.now(),
  )
  c.set('agentId', agent.id)
  return agent
}

// --- grants ------------------------------------------------------------------------------------

async function respondWithTokens(
  c: Context<AppEnv>,
  grant: 'client_credentials' | 'refresh_token',
  agent: { id: string; tokensNotBefore: number | null },
  scope: string,
  refresh: { token: string; familyId: string; expiresAt: number },
): Promise<Response> {
  const services = c.get('services')
  const { config, clock } = services
  const now = clock.now()
  const ttl = config.tunables.accessTokenTtlSeconds
  const { token, claims } = await issueAccessToken(await services.auth.keys(), {
    agentId: agent.id,
    scope,
    environment: config.environment,
    ttlSeconds: ttl,
    now,
    familyId: refresh.familyId,
    issuedAt: issuedAtFor(now, agent.tokensNotBefore),
  })
  services.events.emit({ type: 'token.issued', grant, agentId: agent.id })
  const body: TokenResponse = {
    access_token: token,
    token_type: 'Bearer',
    expires_in: claims.exp - Math.floor(now / 1000),
    expires_at: new Date(claims.exp * 1000).toISOString(),
    refresh_token: refresh.token,
    refresh_expires_in: Math.round((refresh.expiresAt - now) / 1000),
    scope,
    environment: config.environment,
  }
  return c.json(body, 200, { 'Cache-Control': 'no-store', Pragma: 'no-cache' })
}

async function clientCredentialsGrant(
  c: Context<AppEnv>,
  credentials: Credentials,
  requestedScope: string | undefined,
): Promise<Response> {
  const services = c.get('services')
  const agent = await authenticateClient(c, credentials)
  const scopes = grantScopes(requestedScope, agent.allowedScopes)
  if (!scopes) throw oauthError('invalid_scope', 'A requested scope is not allowed for this agent')
  const scope = formatScopes(scopes)
  const refresh = await databaseCall(() =>
    issueRefreshToken(
      requireDatabase(c),
      {
        agentId: agent.id,
        scope,
        environment: services.config.environment,
        ttlSeconds: services.config.tunables.refreshTokenTtlSeconds,
        now: services.clock.now(),
      },
      c.get('trace'),
    ),
  )
  return respondWithTokens(c, 'client_credentials', agent, scope, refresh)
}

async function refreshGrant(
  c: Context<AppEnv>,
  refreshToken: string,
  requestedScope: string | undefined,
  credentials: Credentials | undefined,
): Promise<Response> {
  const services = c.get('services')
  // RFC 6749 §6: a confidential client must authenticate; the token must then be its own.
  if (!credentials?.agentId || !credentials.secret) {
    throw oauthError('invalid_client', 'Client authentication is required to refresh')
  }
  const client = await authenticateClient(c, credentials)
  const now = services.clock.now()
  const rotation = await databaseCall(() =>
    rotateRefreshToken(
      requireDatabase(c),
      refreshToken,
      {
        environment: services.config.environment,
        ttlSeconds: services.config.tunables.refreshTokenTtlSeconds,
        now,
        clientId: client.id,
        scopes: parseScopes(requestedScope),
      },
      c.get('trace'),
    ),
  )
  if (!rotation.ok) {
    if (rotation.revokedFamily) {
      c.get('log').warn('refresh token reused: its family is revoked', { reason: rotation.reason })
      // The family's access tokens go with it (wherever this reaches; the answer is a 400 anyway).
      await revokeFamilyAccess(c, rotation.revokedFamily.agentId, rotation.revokedFamily.familyId)
    }
    services.events.emit({ type: 'token.denied', grant: 'refresh_token', reason: rotation.reason })
    if (rotation.reason === 'wrong_client') {
      throw oauthError('invalid_grant', 'The refresh token was not issued to this client')
    }
    if (rotation.reason === 'scope_exceeded') {
      throw oauthError('invalid_scope', 'The requested scope exceeds the original grant')
    }
    throw oauthError('invalid_grant', 'The refresh token is invalid, expired or revoked')
  }
  // Never more than the original grant, and never more than the agent is allowed today (the
  // rotation has checked both; this computes what to grant).
  const original = parseScopes(rotation.scope).filter((s) => rotation.allowedScopes.includes(s))
  const scopes = grantScopes(requestedScope, original)
  if (!scopes || scopes.length === 0) {
    throw new Error('a rotated refresh token has no scope to grant')
  }
  return respondWithTokens(
    c,
    'refresh_token',
    { id: rotation.agentId, tokensNotBefore: rotation.tokensNotBefore },
    formatScopes(scopes),
    rotation.next,
  )
}

// --- revocation --------------------------------------------------------------------------------

interface RevokeRequest {
  token: string
  credentials?: Credentials
}

async function readRevokeRequest(c: Context<AppEnv>): Promise<RevokeRequest> {
  const type = mediaType(c.req.header('content-type'))
  const basic = basicCredentials(c.req.header('authorization'))
  let fields: { token: string; agentId?: string; secret?: string }
  if (isJsonMediaType(type)) {
    const req = validated(jsonRevoke, parseJson(await c.req.text()))
    fields = { token: req.token, agentId: req.agent_id, secret: req.agent_secret }
  } else if (type === FORM) {
    const form = formFields(await c.req.text())
    const req = validated(revokeForm, form)
    fields = { token: req.token, agentId: req.client_id, secret: req.client_secret }
  } else {
    throw problems.unsupportedMediaType([JSON_TYPE, FORM])
  }
  // token_type_hint is read (and validated) but only a hint: every type is searched (RFC 7009
  // §2.1), and the token's own shape says which it can be.
  return {
    token: fields.token,
    credentials: oneOf(bodyCredentials(fields.agentId, fields.secret), basic),
  }
}

/** The agent the revocation request is authenticated as: credentials, or its own access token. */
async function revokingAgent(
  c: Context<AppEnv>,
  credentials: Credentials | undefined,
): Promise<string> {
  if (credentials) return (await authenticateClient(c, credentials)).id
  if (isBearer(c.req.header('authorization'))) {
    const claims = await authenticate(c)
    c.set('agentId', claims.sub)
    return claims.sub
  }
  const problem = oauthError(
    'invalid_client',
    'Authenticate with client credentials or an access token',
  ).problem
  throw new ProblemError({
    ...problem,
    // Either scheme works here, so both are offered (RFC 9110 allows several challenges).
    headers: { 'WWW-Authenticate': 'Basic realm="agent-api", Bearer realm="agent-api"' },
  })
}

/** Where the revocation list put a revocation; the store being full is a 503 (nothing done). */
async function recordRevocation(
  work: () => Promise<RevocationReach | 'expired'>,
): Promise<RevocationReach | 'expired'> {
  try {
    return await work()
  } catch (err) {
    if (!(err instanceof RevocationStoreFull)) throw err
    throw temporarilyUnavailable(
      'revocation_unavailable',
      'This instance holds as many revocations as it may; nothing was revoked. Retry later',
      30,
    )
  }
}

function revokeFamilyAccess(c: Context<AppEnv>, agentId: string, familyId: string) {
  const { auth, clock } = c.get('services')
  return recordRevocation(() =>
    auth.revocations.revokeFamily(
      agentId,
      familyId,
      clock.now(),
      auth.longestTokenLifeMs,
      requestScope(c),
    ),
  )
}

/**
 * Revokes `token` if it is one of `agentId`'s: a refresh token (with its family and every
 * access token of the family), an access token, or an access token's `jti`. Answers whether
 * the revocation holds everywhere, or (Redis configured but failing) only in this isolate.
 */
async function revoke(c: Context<AppEnv>, agentId: string, token: string): Promise<void> {
  const services = c.get('services')
  const { auth, config, clock } = services
  const now = clock.now()
  let reach: RevocationReach | 'expired' | 'none' = 'none'
  let refreshRevoked = false

  if (looksLikeRefreshToken(token)) {
    const db = requireDatabase(c)
    const familyId = await databaseCall(
      () => revokeRefreshToken(db, token, agentId, config.environment, now, c.get('trace')),
      true,
    )
    if (familyId) {
      refreshRevoked = true
      services.events.emit({ type: 'token.revoked', kind: 'refresh' })
      reach = await revokeFamilyAccess(c, agentId, familyId)
    }
  } else if (token.split('.').length === 3) {
    try {
      const claims = await verifyAccessToken(await auth.keys(), token, {
        environment: config.environment,
        now,
        toleranceSeconds: config.tunables.tokenClockToleranceSeconds,
        maxLifetimeSeconds: config.tunables.accessTokenTtlSeconds,
        allowExpired: true,
      })
      // RFC 7009: a token of another client is left alone (and the answer is still 200).
      if (claims.sub === agentId) {
        reach = await recordRevocation(() =>
          auth.revocations.revokeToken(
            agentId,
            claims.jti,
            claims.exp + config.tunables.tokenClockToleranceSeconds,
            now,
            auth.longestTokenLifeMs,
            requestScope(c),
          ),
        )
      }
    } catch (err) {
      if (!(err instanceof TokenError)) throw err
    }
  } else if (/^[\w-]{1,128}$/.test(token)) {
    // A bare jti carries no expiry: deny it for the longest an access token can live.
    reach = await recordRevocation(() =>
      auth.revocations.revokeToken(
        agentId,
        token,
        Math.ceil((now + auth.longestTokenLifeMs) / 1000),
        now,
        auth.longestTokenLifeMs,
        requestScope(c),
      ),
    )
  }
  if (reach === 'global' || reach === 'isolate') {
    services.events.emit({ type: 'token.revoked', kind: 'access' })
  }
  // Redis is configured but failed: the revocation holds in this isolate (and in Postgres for
  // a refresh token), not everywhere. A 200 would promise more, so the answer says what holds.
  if (reach === 'isolate' && services.redis) {
    throw temporarilyUnavailable(
      'revocation_partial',
      refreshRevoked
        ? 'The refresh token is revoked; its access tokens are revoked on this instance only (the shared revocation store is unavailable). Retry to revoke them everywhere'
        : 'The token is revoked on this instance only (the shared revocation store is unavailable). Retry to revoke it everywhere',
      5,
    )
  }
}

// --- routes -------------------------------------------------------------------------------------

/**
 * Runs `handle` under a spent failure budget: given back when the attempt succeeds, or fails
 * through no fault of the client (a 5xx, or the agent's own request limit); kept otherwise.
 */
async function guarded(
  c: Context<AppEnv>,
  budget: FailureBudget,
  handle: () => Promise<Response>,
): Promise<Response> {
  const now = () => c.get('services').clock.now()
  let response: Response
  try {
    response = await handle()
  } catch (err) {
    const status = err instanceof ProblemError ? err.problem.status : 500
    const failed = status >= 400 && status < 500 && status !== 429
    if (!failed) await budget.refund()
    if (err instanceof ProblemError && status < 500) {
      throw new ProblemError({
        ...err.problem,
        headers: { ...rateLimitHeaders(budget.decision, now()), ...err.problem.headers },
        extensions: withOAuthError(err.problem),
      })
    }
    throw err
  }
  await budget.refund()
  // The agent's request limit speaks for a revocation; the failure budget for a token.
  if (!response.headers.has('RateLimit-Limit')) {
    for (const [name, value] of Object.entries(rateLimitHeaders(budget.decision, now()))) {
      response.headers.set(name, value)
    }
  }
  return response
}

/**
 * The shape both OAuth endpoints share: fail closed on a bad configuration, read the request
 * (a parse error still counts against the failure budget), then handle it under that budget.
 */
async function oauthEndpoint<R extends { credentials?: Credentials }>(
  c: Context<AppEnv>,
  read: (c: Context<AppEnv>) => Promise<R>,
  handle: (request: R) => Promise<Response>,
): Promise<Response> {
  const closed = failClosed(c)
  if (closed) throw temporarilyUnavailable(closed.problem.code, closed.problem.detail ?? '', 300)
  let request: R | undefined
  let parseError: unknown
  try {
    request = await read(c)
  } catch (err) {
    parseError = err
  }
  let budget: FailureBudget
  try {
    budget = await spendFailureBudget(c, request?.credentials?.agentId || undefined)
  } catch (err) {
    // Locked out: a 429 that OAuth clients also understand as "not now".
    if (!(err instanceof ProblemError)) throw err
    throw new ProblemError({
      ...err.problem,
      extensions: {
        error: 'temporarily_unavailable',
        error_description: err.problem.detail ?? 'Too many failed token requests',
      },
    })
  }
  return guarded(c, budget, async () => {
    if (!request) throw parseError
    return handle(request)
  })
}

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

export const tokenRoutes = new Hono<AppEnv>()
  .post(issueToken.path, (c) =>
    oauthEndpoint(c, readTokenRequest, (request) =>
      request.grant === 'client_credentials'
        ? clientCredentialsGrant(c, request.credentials, request.scope)
        : refreshGrant(c, request.refreshToken, request.scope, request.credentials),
    ),
  )
  .post(revokeToken.path, (c) =>
    oauthEndpoint(c, readRevokeRequest, async (request) => {
      const agentId = await revokingAgent(c, request.credentials)
      // Revocations are requests of the agent like any other: inside its request limit.
      await consumeAgentRequest(c, agentId)
      await revoke(c, agentId, request.token)
      return c.json({}, 200, { 'Cache-Control': 'no-store' })
    }),
  )
