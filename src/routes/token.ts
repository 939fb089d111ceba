// POST /api/v1/agent/token (RFC 6749 client credentials and refresh, plus the contract's JSON
// form) and POST /api/v1/agent/token/revoke (RFC 7009).
//
// Failed requests are rate limited per (agent id, client address) and per address; the
// limit is checked before credentials are, so a locked-out guesser learns nothing more.
import { type Context, Hono } from 'hono'
import * as z from 'zod/mini'
import { issueAccessToken, TokenError, verifyAccessToken } from '../auth/access-token.ts'
import { authenticateAgent } from '../auth/credentials.ts'
import {
  issueRefreshToken,
  looksLikeRefreshToken,
  revokeRefreshToken,
  rotateRefreshToken,
} from '../auth/refresh-token.ts'
import { formatScopes, grantScopes, parseScopes } from '../auth/scopes.ts'
import type { AppEnv } from '../context.ts'
import { isDatabaseOutage } from '../db/client.ts'
import { authenticate, failClosed, rateLimited, rateLimitHeaders } from '../middleware/auth.ts'
import { isJsonMediaType, mediaType, parseJson } from '../middleware/body.ts'
import { clientAddress, requestScope } from '../platform.ts'
import { type FieldError, ProblemError, problems } from '../problem.ts'
import type { LimitDecision } from '../ratelimit/limiter.ts'
import {
  jsonClientCredentials,
  jsonRefresh,
  jsonRevoke,
  type OAuthError,
  revokeForm,
  type TokenResponse,
  tokenForm,
} from '../schemas/token.ts'
import { fieldErrors } from '../validation.ts'

const FORM = 'application/x-www-form-urlencoded'
const JSON_TYPE = 'application/json'

type Credentials = { agentId: string; secret: string; via: 'basic' | 'body' }

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
function temporarilyUnavailable(code: string, detail: string, retryAfter: number): ProblemError {
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
    error: 'invalid_request',
    error_description: problem.detail ?? problem.title ?? problem.code,
  }
}

// --- parsing ---------------------------------------------------------------------------------

/** HTTP Basic client credentials (RFC 6749 §2.3.1: both parts form-urlencoded). */
function basicCredentials(header: string | undefined): Credentials | undefined {
  const match = header && /^Basic +([A-Za-z0-9+/=]+) *$/i.exec(header)
  if (!match?.[1]) {
    if (header && /^Basic\b/i.test(header)) {
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
  return {
    agentId: decode(decoded.slice(0, colon)),
    secret: decode(decoded.slice(colon + 1)),
    via: 'basic',
  }
}

/** Form fields, refusing repeated parameters (RFC 6749 §3.2) and over-long values. */
function formFields(text: string): Record<string, string> {
  const fields: Record<string, string> = {}
  for (const [key, value] of new URLSearchParams(text)) {
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
        credentials: basic,
      }
    }
    if (grantType !== undefined && grantType !== 'client_credentials') {
      throw oauthError('unsupported_grant_type', 'Use client_credentials or refresh_token')
    }
    if (basic) throw oauthError('invalid_request', 'Send credentials once: in the body or by Basic')
    const req = validated(jsonClientCredentials, body)
    return {
      grant: 'client_credentials',
      credentials: { agentId: req.agent_id, secret: req.agent_secret, via: 'body' },
      scope: req.scope,
    }
  }

  if (type === FORM) {
    const fields = formFields(await c.req.text())
    // Held to the JSON body's schemas; grant_type is checked below, in OAuth's order.
    validated(TOKEN_FORM_FIELDS, fields)
    const scope = fields.scope
    const inBody =
      fields.client_id !== undefined || fields.client_secret !== undefined
        ? {
            agentId: fields.client_id ?? '',
            secret: fields.client_secret ?? '',
            via: 'body' as const,
          }
        : undefined
    if (inBody && basic)
      throw oauthError('invalid_request', 'Send credentials once: in the body or by Basic')
    const credentials = basic ?? inBody
    switch (fields.grant_type) {
      case undefined:
      case '':
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

// --- failure accounting ----------------------------------------------------------------------

interface FailureBudget {
  /** The tighter of the (agent, address) and address decisions, for the headers. */
  decision: LimitDecision
  record(): Promise<void>
}

async function failureBudget(
  c: Context<AppEnv>,
  agentId: string | undefined,
): Promise<FailureBudget> {
  const services = c.get('services')
  const { limits } = services.auth
  const now = services.clock.now()
  const address = clientAddress(c.req.raw.headers, services.platform)
  const ctx = { now, ...requestScope(c) }
  const agentKey = agentId ? `${agentId}|${address}` : undefined
  const [perAgent, perAddress] = await Promise.all([
    agentKey ? limits.tokenFailuresPerAgent.peek(agentKey, ctx) : undefined,
    limits.tokenFailuresPerAddress.peek(address, ctx),
  ])
  const decisions = [perAgent, perAddress].filter((d): d is LimitDecision => d !== undefined)
  const blocked = decisions.find((d) => !d.allowed)
  const decision = blocked ?? decisions.reduce((a, b) => (b.remaining < a.remaining ? b : a))
  if (blocked) {
    services.events.emit({ type: 'ratelimit.limited', limiter: 'token-failures' })
    throw rateLimited(blocked, now, 'Too many failed token requests; retry after the reset')
  }
  const budget: FailureBudget = {
    decision,
    async record() {
      const consumed = await Promise.all([
        agentKey ? limits.tokenFailuresPerAgent.consume(agentKey, ctx) : undefined,
        limits.tokenFailuresPerAddress.consume(address, ctx),
      ])
      const after = consumed.filter((d): d is LimitDecision => d !== undefined)
      budget.decision = after.reduce((a, b) => (b.remaining < a.remaining ? b : a))
    },
  }
  return budget
}

// --- grants ------------------------------------------------------------------------------------

function requireDatabase(c: Context<AppEnv>) {
  const { db } = c.get('services')
  if (!db) throw temporarilyUnavailable('database_unavailable', 'No database is configured', 30)
  return db
}

/**
 * Database outages on the token path are 503s, never a 401 that blames the agent. Anything
 * else (a rejected statement) is a defect: it goes on to the 500 handler, which logs it.
 */
async function databaseCall<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work()
  } catch (err) {
    if (err instanceof ProblemError || !isDatabaseOutage(err)) throw err
    throw temporarilyUnavailable('database_unavailable', 'The token store is unavailable', 5)
  }
}

async function respondWithTokens(
  c: Context<AppEnv>,
  grant: 'client_credentials' | 'refresh_token',
  agentId: string,
  scope: string,
  refresh: { token: string; expiresAt: number },
): Promise<Response> {
  const services = c.get('services')
  const { config, clock } = services
  const now = clock.now()
  const ttl = config.tunables.accessTokenTtlSeconds
  const { token, claims } = await issueAccessToken(await services.auth.keys(), {
    agentId,
    scope,
    environment: config.environment,
    ttlSeconds: ttl,
    now,
  })
  services.events.emit({ type: 'token.issued', grant, agentId })
  c.set('agentId', agentId)
  const body: TokenResponse = {
    access_token: token,
    token_type: 'Bearer',
    expires_in: ttl,
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
  const db = requireDatabase(c)
  const agent = await databaseCall(() =>
    authenticateAgent(
      db,
      services.config.agentSecret!,
      credentials.agentId,
      credentials.secret,
      c.get('trace'),
    ),
  )
  if (!agent) throw oauthError('invalid_client', INVALID_CLIENT)
  const scopes = grantScopes(requestedScope, agent.allowedScopes)
  if (!scopes) throw oauthError('invalid_scope', 'A requested scope is not allowed for this agent')
  const scope = formatScopes(scopes)
  const now = services.clock.now()
  const refresh = await databaseCall(() =>
    issueRefreshToken(
      db,
      {
        agentId: agent.id,
        scope,
        ttlSeconds: services.config.tunables.refreshTokenTtlSeconds,
        now,
      },
      c.get('trace'),
    ),
  )
  return respondWithTokens(c, 'client_credentials', agent.id, scope, refresh)
}

async function refreshGrant(
  c: Context<AppEnv>,
  refreshToken: string,
  requestedScope: string | undefined,
  credentials: Credentials | undefined,
): Promise<Response> {
  const services = c.get('services')
  const db = requireDatabase(c)
  // A confidential client may authenticate here too; then the token must be its own.
  const client = credentials
    ? await databaseCall(() =>
        authenticateAgent(
          db,
          services.config.agentSecret!,
          credentials.agentId,
          credentials.secret,
          c.get('trace'),
        ),
      )
    : undefined
  if (credentials && !client) throw oauthError('invalid_client', INVALID_CLIENT)

  const now = services.clock.now()
  const rotation = await databaseCall(() =>
    rotateRefreshToken(
      db,
      refreshToken,
      {
        ttlSeconds: services.config.tunables.refreshTokenTtlSeconds,
        now,
        clientId: client?.id,
        scopes: parseScopes(requestedScope),
      },
      c.get('trace'),
    ),
  )
  if (!rotation.ok) {
    if (rotation.reason === 'reused') {
      c.get('log').warn('refresh token reused: its family is revoked', { reason: rotation.reason })
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
    rotation.agentId,
    formatScopes(scopes),
    rotation.next,
  )
}

// --- revocation --------------------------------------------------------------------------------

interface RevokeRequest {
  token: string
  hint?: 'access_token' | 'refresh_token'
  credentials?: Credentials
}

async function readRevokeRequest(c: Context<AppEnv>): Promise<RevokeRequest> {
  const type = mediaType(c.req.header('content-type'))
  const basic = basicCredentials(c.req.header('authorization'))
  let fields: {
    token: string
    hint?: 'access_token' | 'refresh_token'
    agentId?: string
    secret?: string
  }
  if (isJsonMediaType(type)) {
    const req = validated(jsonRevoke, parseJson(await c.req.text()))
    fields = {
      token: req.token,
      hint: req.token_type_hint,
      agentId: req.agent_id,
      secret: req.agent_secret,
    }
  } else if (type === FORM) {
    const form = formFields(await c.req.text())
    const req = validated(revokeForm, form)
    const hint = req.token_type_hint
    fields = {
      token: req.token,
      hint: hint === 'access_token' || hint === 'refresh_token' ? hint : undefined,
      agentId: form.client_id,
      secret: form.client_secret,
    }
  } else {
    throw problems.unsupportedMediaType([JSON_TYPE, FORM])
  }
  const inBody =
    fields.agentId !== undefined || fields.secret !== undefined
      ? { agentId: fields.agentId ?? '', secret: fields.secret ?? '', via: 'body' as const }
      : undefined
  if (inBody && basic)
    throw oauthError('invalid_request', 'Send credentials once: in the body or by Basic')
  return { token: fields.token, hint: fields.hint, credentials: basic ?? inBody }
}

/** The agent the revocation request is authenticated as: credentials, or its own access token. */
async function revokingAgent(
  c: Context<AppEnv>,
  credentials: Credentials | undefined,
): Promise<string> {
  if (credentials) {
    const db = requireDatabase(c)
    const agent = await databaseCall(() =>
      authenticateAgent(
        db,
        c.get('services').config.agentSecret!,
        credentials.agentId,
        credentials.secret,
        c.get('trace'),
      ),
    )
    if (!agent) throw oauthError('invalid_client', INVALID_CLIENT)
    return agent.id
  }
  if (c.req.header('authorization')?.match(/^Bearer /i)) {
    return (await authenticate(c)).sub
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

async function revoke(c: Context<AppEnv>, agentId: string, request: RevokeRequest): Promise<void> {
  const services = c.get('services')
  const { auth, config, clock } = services
  const now = clock.now()
  const { token } = request

  if (request.hint !== 'access_token' && looksLikeRefreshToken(token)) {
    const db = requireDatabase(c)
    const revoked = await databaseCall(() =>
      revokeRefreshToken(db, token, agentId, now, c.get('trace')),
    )
    if (revoked) services.events.emit({ type: 'token.revoked', kind: 'refresh' })
    return
  }

  // An access token itself, or its jti.
  let jti: string | undefined
  let exp: number | undefined
  if (token.split('.').length === 3) {
    try {
      const claims = await verifyAccessToken(await auth.keys(), token, {
        environment: config.environment,
        now,
        toleranceSeconds: config.tunables.tokenClockToleranceSeconds,
        allowExpired: true,
      })
      // RFC 7009: a token of another client is left alone (and the answer is still 200).
      if (claims.sub === agentId) ({ jti, exp } = claims)
    } catch (err) {
      if (!(err instanceof TokenError)) throw err
    }
  } else if (/^[\w-]{1,128}$/.test(token)) {
    // A bare jti carries no expiry: deny it for the longest an access token can live.
    jti = token
    exp =
      Math.ceil(now / 1000) +
      config.tunables.accessTokenTtlSeconds +
      config.tunables.tokenClockToleranceSeconds
  }
  if (!jti || exp === undefined) return
  try {
    await auth.revocations.revoke(agentId, jti, exp, now, { trace: c.get('trace') })
  } catch {
    // Redis is configured but failing: the revocation holds only in this isolate. RFC 7009
    // §2.2.1 lets us say so with a 503, and the agent can retry.
    throw temporarilyUnavailable('revocation_unavailable', 'The revocation store is unavailable', 5)
  }
  services.events.emit({ type: 'token.revoked', kind: 'access' })
}

// --- routes -------------------------------------------------------------------------------------

async function guarded(
  c: Context<AppEnv>,
  agentIdHint: string | undefined,
  handle: () => Promise<Response>,
): Promise<Response> {
  const budget = await failureBudget(c, agentIdHint).catch((err: unknown) => {
    // Locked out: a 429 that OAuth clients also understand as "not now".
    if (!(err instanceof ProblemError)) throw err
    throw new ProblemError({
      ...err.problem,
      extensions: {
        error: 'temporarily_unavailable',
        error_description: err.problem.detail ?? 'Too many failed token requests',
      },
    })
  })
  let response: Response
  try {
    response = await handle()
  } catch (err) {
    if (err instanceof ProblemError && err.problem.status >= 400 && err.problem.status < 500) {
      await budget.record()
      const headers = rateLimitHeaders(budget.decision, c.get('services').clock.now())
      throw new ProblemError({
        ...err.problem,
        headers: { ...err.problem.headers, ...headers },
        extensions: withOAuthError(err.problem),
      })
    }
    throw err
  }
  for (const [name, value] of Object.entries(
    rateLimitHeaders(budget.decision, c.get('services').clock.now()),
  )) {
    response.headers.set(name, value)
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
  // Before parsing, the agent id is known only from Basic; the body's is read inside.
  return guarded(c, request?.credentials?.agentId || undefined, async () => {
    if (!request) throw parseError
    return handle(request)
  })
}

export const tokenRoutes = new Hono<AppEnv>()
  .post('/api/v1/agent/token', (c) =>
    oauthEndpoint(c, readTokenRequest, (request) => {
      c.set('agentId', request.credentials?.agentId || undefined)
      return request.grant === 'client_credentials'
        ? clientCredentialsGrant(c, request.credentials, request.scope)
        : refreshGrant(c, request.refreshToken, request.scope, request.credentials)
    }),
  )
  .post('/api/v1/agent/token/revoke', (c) =>
    oauthEndpoint(c, readRevokeRequest, async (request) => {
      const agentId = await revokingAgent(c, request.credentials)
      c.set('agentId', agentId)
      await revoke(c, agentId, request)
      return c.json({}, 200, { 'Cache-Control': 'no-store' })
    }),
  )
