// Bearer authentication (RFC 6750) and the per-agent rate limit, for every protected route.
//
// A verified token is cached until its exp, so a hot agent pays for HMAC once; the
// revocation list is still consulted on every request (its own cache bounds how stale a
// "not revoked" answer can be).
import type { Context, MiddlewareHandler } from 'hono'
import { type AccessClaims, TokenError, verifyAccessToken } from '../auth/access-token.ts'
import { hasScope } from '../auth/scopes.ts'
import type { AppEnv } from '../context.ts'
import { requestScope } from '../platform.ts'
import { ProblemError, problems } from '../problem.ts'
import type { LimitDecision } from '../ratelimit/limiter.ts'
import type { Scope } from '../schemas/token.ts'

/** Tokens longer than this are refused before any parsing (they are never ours). */
export const MAX_TOKEN_BYTES = 8 * 1024

const REALM = 'realm="agent-api"'

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
  const match = /^Bearer +([^\s]+) *$/i.exec(header)
  if (!match?.[1]) throw invalidToken('Use the Bearer scheme')
  const token = match[1]
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

  if (await auth.revocations.isRevoked(claims.sub, claims.jti, now, { trace: c.get('trace') })) {
    services.events.emit({ type: 'token.rejected', reason: 'revoked' })
    throw invalidToken('The access token has been revoked')
  }
  return claims
}

export function rateLimitHeaders(decision: LimitDecision, now: number): Record<string, string> {
  const resetSeconds = Math.max(0, Math.ceil((decision.resetAt - now) / 1000))
  return {
    'RateLimit-Limit': String(decision.limit),
    'RateLimit-Remaining': String(decision.remaining),
    'RateLimit-Reset': String(resetSeconds),
  }
}

export function rateLimited(decision: LimitDecision, now: number, detail: string): ProblemError {
  const headers = rateLimitHeaders(decision, now)
  return new ProblemError({
    status: 429,
    code: 'rate_limited',
    detail,
    headers: { ...headers, 'Retry-After': String(Math.max(1, Number(headers['RateLimit-Reset']))) },
  })
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

    const services = c.get('services')
    const now = services.clock.now()
    const decision = await services.auth.limits.requestsPerAgent.consume(claims.sub, {
      now,
      ...requestScope(c),
    })
    if (!decision.allowed) {
      services.events.emit({ type: 'ratelimit.limited', limiter: 'requests-agent' })
      throw rateLimited(decision, now, 'Too many requests for this agent; retry after the reset')
    }
    // Prepared now, they are part of the response the route builds (a problem included).
    const limitHeaders = rateLimitHeaders(decision, now)
    for (const name in limitHeaders) c.header(name, limitHeaders[name])
    await next()
  }
}
