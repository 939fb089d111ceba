// Bearer authentication (RFC 6750) and the per-agent rate limit, for every protected route.
//
// A verified token is cached until its exp, so a hot agent pays for HMAC once; what can end a
// token before its exp is still consulted on every request, each from its own short cache:
// the revocation list (its token, its family; REVOCATION_CHECK_TTL_MS) and the agent's status
// (deactivated, or every token revoked; GRANT_CACHE_TTL_MS). The two lookups run side by side.
import type { Context, MiddlewareHandler } from 'hono'
import { type AccessClaims, TokenError, verifyAccessToken } from '../auth/access-token.ts'
import { statusRefusal } from '../auth/agent-status.ts'
import { hasScope } from '../auth/scopes.ts'
import { ProblemError, problems } from '../contract/problem.ts'
import type { Scope } from '../contract/token.ts'
import { rateLimited, rateLimitHeaders } from '../ratelimit/answers.ts'
import type { AppEnv } from './context.ts'
import { requestScope } from './scope.ts'

/** Tokens longer than this are refused before any parsing (they are never ours). */
export const MAX_TOKEN_BYTES = 8 * 1024

const REALM = 'realm="agent-api"'

/** `Bearer <token>`, the scheme name in any case (RFC 9110 §11.1); undefined otherwise. */
export function bearerToken(header: string | undefined): string | undefined {
  return header ? /^Bearer +([^\s]+) *$/i.exec(header)?.[1] : undefined
}

export function isBearer(header: string | undefined): boolean {
  return header !== undefined && /^Bearer(\s|$)/i.test(header)
}

function invalidToken(detail: string): ProblemError {
  return new ProblemError({
    status: 401,
    code: 'invalid_token',
    detail,
    headers: {
      'WWW-Authenticate': `Bearer ${REALM}, error="invalid_token", error_description="${detail}"`,
    },
  })
}

export function failClosed(c: Context<AppEnv>): ProblemError | undefined {
  if (!c.get('services').config.failClosed) return undefined
  return problems.unavailable(
    'configuration_error',
    'The service is not configured correctly for this environment; see the health report',
    300,
  )
}

/** Verifies the bearer token: from the cache when it has been seen, else with jose. */
export async function authenticate(c: Context<AppEnv>): Promise<AccessClaims> {
  const services = c.get('services')
  const header = c.req.header('authorization')
  if (!header) throw invalidToken('An access token is required')
  const token = bearerToken(header)
  if (!token) throw invalidToken('Use the Bearer scheme')
  if (token.length > MAX_TOKEN_BYTES) throw invalidToken('The access token is too long')

  const { auth, config, clock } = services
  const now = clock.now()
  const cached = auth.verified.get(token, now)
  let claims: AccessClaims
  if (cached) {
    claims = cached.value
    services.events.emit({ type: 'token.verified', cached: true })
  } else {
    try {
      claims = await verifyAccessToken(await auth.keys(), token, {
        environment: config.environment,
        now,
        toleranceSeconds: config.tunables.tokenClockToleranceSeconds,
        maxLifetimeSeconds: config.tunables.accessTokenTtlSeconds,
      })
    } catch (err) {
      const reason = err instanceof TokenError ? err.reason : 'malformed'
      services.events.emit({ type: 'token.rejected', reason })
      c.get('log').info('access token rejected', { reason })
      throw invalidToken('The access token is invalid or expired')
    }
    services.events.emit({ type: 'token.verified', cached: false })
    // Cached until exp (plus the clock tolerance verification also allows).
    const ttlMs = (claims.exp + config.tunables.tokenClockToleranceSeconds) * 1000 - now
    auth.verified.set(token, claims, { now, ttlMs })
  }
  // A cached token must still be inside its validity window.
  const tolerance = config.tunables.tokenClockToleranceSeconds * 1000
  if (now > claims.exp * 1000 + tolerance)
    throw invalidToken('The access token is invalid or expired')

  const scope = requestScope(c)
  const [revoked, status] = await Promise.all([
    auth.revocations.isRevoked(claims, now, scope),
    services.db ? auth.agents.status(services.db, claims.sub, now, scope) : undefined,
  ])
  const refusal = revoked ? 'revoked' : status && statusRefusal(status, claims.iat)
  if (refusal) {
    services.events.emit({ type: 'token.rejected', reason: refusal })
    throw invalidToken(
      refusal === 'revoked'
        ? 'The access token has been revoked'
        : 'The access token is invalid or expired',
    )
  }
  return claims
}

/**
 * Requires a valid access token (and `scope`, when given), then applies the per-agent
 * request limit. Sets `agentId` and `principal` on the context.
 */
export function requireAuth(
  scope?: Scope,
  options: {
    /**
     * Serve even when the configuration fails closed, as long as the token signing keys
     * themselves are sound (the health report must be readable exactly then).
     */
    whenFailingClosed?: boolean
  } = {},
): MiddlewareHandler<AppEnv> {
  return async function requireAuth(c, next) {
    const closed = failClosed(c)
    const keysSound = !c
      .get('services')
      .config.findings.some(
        (f) =>
          f.severity === 'fatal' &&
          /JWT_SECRET|APP_ENV|VERCEL_ENV|ENVIRONMENT|NODE_ENV/.test(f.variable),
      )
    if (closed && !(options.whenFailingClosed && keysSound)) throw closed
    const claims = await authenticate(c)
    c.set('agentId', claims.sub)

    if (scope && !hasScope(claims.scope, scope)) {
      throw new ProblemError({
        status: 403,
        code: 'insufficient_scope',
        detail: `This route needs the ${scope} scope`,
        headers: {
          'WWW-Authenticate': `Bearer ${REALM}, error="insufficient_scope", scope="${scope}"`,
        },
      })
    }

    await consumeAgentRequest(c, claims.sub)
    await next()
  }
}

/**
 * Counts one request against the agent's request limit: `429` when it is spent, else the
 * RateLimit headers, prepared on the context so every answer carries them (a problem too).
 */
export async function consumeAgentRequest(c: Context<AppEnv>, agentId: string): Promise<void> {
  const services = c.get('services')
  const now = services.clock.now()
  const decision = await services.auth.limits.requestsPerAgent.consume(agentId, {
    now,
    ...requestScope(c),
  })
  if (!decision.allowed) {
    services.events.emit({ type: 'ratelimit.limited', limiter: 'requests-agent' })
    throw rateLimited(decision, now, 'Too many requests for this agent; retry after the reset')
  }
  const limitHeaders = rateLimitHeaders(decision, now)
  for (const name in limitHeaders) c.header(name, limitHeaders[name])
}
