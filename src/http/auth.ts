// Bearer authentication (RFC 6750) and the per-agent rate limit, for every protected route.
//
// A verified token is cached until its exp, so a hot agent pays for a signature check once;
// what can end a token before its exp is still consulted on every request, each from its own
// short cache: the revocation list (its token, its family; REVOCATION_CHECK_TTL_MS) and the
// agent's status (deactivated, or every token revoked; GRANT_CACHE_TTL_MS). The two lookups
// run side by side. The audience is checked on every request too: a route takes tokens for its
// own resource only (RFC 8707), and every challenge names that resource's metadata (RFC 9728
// §5.1), so a client that knows nothing else can discover how to get a token.
import type { Context, MiddlewareHandler } from 'hono'
import { type AccessClaims, TokenError, verifyAccessToken } from '../auth/access-token.ts'
import { CLIENT_KEY_ALGS } from '../auth/client-assertion.ts'
import { DpopError, type DpopProof, proofKeyBytes, verifyDpopProof } from '../auth/dpop.ts'
import { dpopNonceHolds, issueDpopNonce } from '../auth/dpop-nonce.ts'
import type { KeyRing } from '../auth/keys.ts'
import { tokenRefusal } from '../auth/principal.ts'
import { ReplayCacheFull } from '../auth/replay.ts'
import { type Issuer, protectedResourceMetadataUrl, type ResourceName } from '../auth/resources.ts'
import { hasScope } from '../auth/scopes.ts'
import { ProblemError, problems } from '../contract/problem.ts'
import type { Scope } from '../contract/token.ts'
import { rateLimited, rateLimitHeaders } from '../ratelimit/answers.ts'
import type { AppEnv } from './context.ts'
import { prepareHeader } from './headers.ts'
import { requestScope } from './scope.ts'

/** Tokens longer than this are refused before any parsing (they are never ours). */
export const MAX_TOKEN_BYTES = 8 * 1024

const REALM = 'realm="agent-api"'

/** `Bearer <token>`, the scheme name in any case (RFC 9110 §11.1); undefined otherwise. */
export function bearerToken(header: string | undefined): string | undefined {
  return header ? /^Bearer +([^\s]+) *$/i.exec(header)?.[1] : undefined
}

export function isBearer(header: string | undefined): boolean {
  return header !== undefined && /^(Bearer|DPoP)(\s|$)/i.test(header)
}

/** `Bearer <token>` or (RFC 9449 §7.1) `DPoP <token>`, the scheme in any case. */
export function presentedToken(
  header: string,
): { scheme: 'Bearer' | 'DPoP'; token: string } | undefined {
  const match = /^(Bearer|DPoP) +([^\s]+) *$/i.exec(header)
  if (!match?.[2]) return undefined
  return { scheme: match[1]!.toLowerCase() === 'dpop' ? 'DPoP' : 'Bearer', token: match[2] }
}

/**
 * A DPoP challenge (RFC 9449 §7.1): the algorithms a proof may use, the error, and the
 * resource's metadata (RFC 9728 §5.1).
 */
export function dpopChallenge(
  resource: string,
  params: { error: string; error_description: string },
): string {
  const quoted = (v: string) => v.replaceAll(/["\\]/g, '')
  return [
    `DPoP ${REALM}`,
    `error="${quoted(params.error)}"`,
    `error_description="${quoted(params.error_description)}"`,
    `algs="${CLIENT_KEY_ALGS.join(' ')}"`,
    `resource_metadata="${protectedResourceMetadataUrl(resource)}"`,
  ].join(', ')
}

function dpopRefusal(resource: string, error: string, detail: string): ProblemError {
  return new ProblemError({
    status: 401,
    code: 'invalid_token',
    detail,
    headers: { 'WWW-Authenticate': dpopChallenge(resource, { error, error_description: detail }) },
  })
}

/**
 * RFC 9449 §7: a DPoP-bound token comes with a proof by its key, made for this request (method,
 * URL as the issuer names it, `ath` of this token), used once. Throws a 401 with a DPoP challenge.
 */
async function checkResourceProof(
  c: Context<AppEnv>,
  token: string,
  jkt: string,
  identity: Issuer,
  challenged: string,
): Promise<void> {
  const services = c.get('services')
  const { tunables } = services.config
  const proofHeader = c.req.header('dpop')
  if (!proofHeader) {
    throw dpopRefusal(challenged, 'invalid_dpop_proof', 'A DPoP proof is required')
  }
  const now = services.clock.now()
  const nonceTtl = tunables.dpopNonceTtlSeconds
  const keys = nonceTtl > 0 ? await keyRing(c) : undefined
  let proof: DpopProof
  try {
    proof = await verifyDpopProof(proofHeader, {
      method: c.req.method,
      url: `${identity.issuer}${new URL(c.req.url).pathname}`,
      now,
      maxAgeSeconds: tunables.dpopProofMaxAgeSeconds,
      toleranceSeconds: tunables.tokenClockToleranceSeconds,
      accessToken: token,
      ...(keys && { nonceHolds: (n: unknown) => dpopNonceHolds(keys, n, now, nonceTtl) }),
      keys: {
        get: (id) => services.auth.dpopKeys.get(id, now)?.value,
        // Only the key the token is bound to (a proof by any other is refused below, and
        // keeping its key would let one client evict the others'). Kept while used (an hour
        // unused, or evicted by newer ones): a key never changes.
        set: (id, entry) => {
          if (entry.jkt !== jkt) return
          services.auth.dpopKeys.set(id, entry, {
            now,
            ttlMs: 3_600_000,
            bytes: proofKeyBytes(id),
          })
        },
      },
    })
  } catch (err) {
    if (!(err instanceof DpopError)) throw err
    services.events.emit({ type: 'token.rejected', reason: `dpop_${err.reason}` })
    c.get('log').info('DPoP proof refused', { reason: err.reason })
    if (err.reason === 'nonce' && keys) {
      // RFC 9449 §9: a 401 naming the nonce to use.
      const refusal = dpopRefusal(
        challenged,
        'use_dpop_nonce',
        'Sign the DPoP proof with the DPoP-Nonce',
      )
      refusal.problem.headers = {
        ...refusal.problem.headers,
        'DPoP-Nonce': await issueDpopNonce(keys, now, nonceTtl),
      }
      throw refusal
    }
    throw dpopRefusal(challenged, 'invalid_dpop_proof', 'The DPoP proof is invalid')
  }
  if (proof.jkt !== jkt) {
    throw dpopRefusal(challenged, 'invalid_token', 'The access token is bound to another key')
  }
  let first: boolean
  try {
    first = await services.auth.replays.firstUse(
      'dpop-proof',
      `${proof.jkt}\u0000${proof.jti}`,
      proof.rememberUntil,
      now,
      requestScope(c),
    )
  } catch (err) {
    if (!(err instanceof ReplayCacheFull)) throw err
    throw problems.unavailable(
      'auth_unavailable',
      'This instance cannot record more DPoP proofs right now; retry later',
      5,
    )
  }
  if (!first) {
    c.get('log').info('DPoP proof refused', { reason: 'replayed' })
    throw dpopRefusal(challenged, 'invalid_dpop_proof', 'The DPoP proof was used before')
  }
}

/**
 * The deployment's identity as this request sees it: PUBLIC_URL, or (development only, where
 * it may be unset) the request's own origin.
 */
export function issuerFor(c: Context<AppEnv>): Issuer {
  const { config, auth } = c.get('services')
  return auth.identity(config.publicUrl ?? originOf(c.req.url))
}

/** `scheme://host[:port]` of a serialised URL (a Request's), without parsing it again. */
function originOf(url: string): string {
  const end = url.indexOf('/', url.indexOf('//') + 2)
  return end === -1 ? url : url.slice(0, end)
}

/**
 * A Bearer challenge (RFC 6750 §3) naming the resource's metadata (RFC 9728 §5.1). Without an
 * `error` when the request carried no credentials at all (RFC 6750 §3.1).
 */
export function bearerChallenge(
  resource: string,
  params: { error?: string; error_description?: string; scope?: string } = {},
): string {
  const parts = [`Bearer ${REALM}`]
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined) parts.push(`${name}="${value.replaceAll(/["\\]/g, '')}"`)
  }
  parts.push(`resource_metadata="${protectedResourceMetadataUrl(resource)}"`)
  return parts.join(', ')
}

function invalidToken(resource: string, detail: string): ProblemError {
  return new ProblemError({
    status: 401,
    code: 'invalid_token',
    detail,
    headers: {
      'WWW-Authenticate': bearerChallenge(resource, {
        error: 'invalid_token',
        error_description: detail,
      }),
    },
  })
}

/** No credentials at all: a bare challenge, no `error` (RFC 6750 §3.1). */
function noToken(resource: string): ProblemError {
  return new ProblemError({
    status: 401,
    code: 'invalid_token',
    detail: 'An access token is required',
    headers: { 'WWW-Authenticate': bearerChallenge(resource) },
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

/** The key ring, or the 503 a configuration whose keys cannot be used answers. */
export async function keyRing(c: Context<AppEnv>): Promise<KeyRing> {
  try {
    return await c.get('services').auth.keys()
  } catch {
    throw problems.unavailable(
      'configuration_error',
      'The token signing keys cannot be used; see the health report',
      300,
    )
  }
}

/**
 * Verifies the bearer token (from the cache when it has been seen, else with jose) and that it
 * is for `resource` (an audience of this deployment; `any`: whichever, for the token
 * endpoints' own use), then that neither it nor its agent has been revoked.
 */
export async function authenticate(
  c: Context<AppEnv>,
  resource: ResourceName | 'any' = 'api',
): Promise<AccessClaims> {
  const services = c.get('services')
  const identity = issuerFor(c)
  const challenged = resource === 'any' ? identity.api : identity[resource]
  const header = c.req.header('authorization')
  if (!header) throw noToken(challenged)
  const presented = presentedToken(header)
  if (!presented) throw invalidToken(challenged, 'Use the Bearer or DPoP scheme')
  const { token } = presented
  if (token.length > MAX_TOKEN_BYTES) throw invalidToken(challenged, 'The access token is too long')

  const { auth, config, clock } = services
  const now = clock.now()
  const cacheKey = token.slice(token.lastIndexOf('.') + 1)
  const cached = auth.verified.get(cacheKey, now)?.value
  let claims: AccessClaims
  if (cached?.token === token) {
    claims = cached.claims
    services.events.emit({ type: 'token.verified', cached: true })
  } else {
    const ring = await keyRing(c)
    try {
      claims = await verifyAccessToken(ring, token, {
        issuer: identity.issuer,
        audiences: identity.resources,
        environment: config.environment,
        now,
        toleranceSeconds: config.tunables.tokenClockToleranceSeconds,
        maxLifetimeSeconds: config.tunables.accessTokenTtlSeconds,
      })
    } catch (err) {
      const reason = err instanceof TokenError ? err.reason : 'malformed'
      services.events.emit({ type: 'token.rejected', reason })
      c.get('log').info('access token rejected', { reason })
      throw invalidToken(challenged, 'The access token is invalid or expired')
    }
    services.events.emit({ type: 'token.verified', cached: false })
    // Cached until exp (plus the clock tolerance verification also allows).
    const ttlMs = (claims.exp + config.tunables.tokenClockToleranceSeconds) * 1000 - now
    auth.verified.set(cacheKey, { token, claims }, { now, ttlMs })
  }
  // A cached token must still be inside its validity window, from this issuer (development may
  // be reached under several origins), and for this route's resource.
  const tolerance = config.tunables.tokenClockToleranceSeconds * 1000
  if (now > claims.exp * 1000 + tolerance || claims.iss !== identity.issuer) {
    throw invalidToken(challenged, 'The access token is invalid or expired')
  }
  if (resource !== 'any' && claims.aud !== challenged) {
    services.events.emit({ type: 'token.rejected', reason: 'audience' })
    throw invalidToken(challenged, 'The access token is for another resource')
  }
  // RFC 9449 §7: a bound token only with the DPoP scheme and a proof by its key; the DPoP
  // scheme only with a bound token.
  if (claims.cnf) {
    if (presented.scheme !== 'DPoP') {
      services.events.emit({ type: 'token.rejected', reason: 'dpop_downgraded' })
      throw dpopRefusal(
        challenged,
        'invalid_token',
        'The access token is DPoP-bound: send it with the DPoP scheme and a proof',
      )
    }
    await checkResourceProof(c, token, claims.cnf.jkt, identity, challenged)
  } else if (presented.scheme === 'DPoP') {
    throw invalidToken(challenged, 'The access token is not DPoP-bound: use the Bearer scheme')
  }

  const refusal = await tokenRefusal(services, claims, now, requestScope(c))
  if (refusal) {
    services.events.emit({ type: 'token.rejected', reason: refusal })
    throw invalidToken(
      challenged,
      refusal === 'revoked'
        ? 'The access token has been revoked'
        : 'The access token is invalid or expired',
    )
  }
  return claims
}

/**
 * Requires a valid access token (and `scope`, when given), then applies the per-agent
 * request limit. Sets `agentId` (the agent, `client_id`) and, for a delegated token, `actingFor`
 * (its user) on the context.
 */
export function requireAuth(
  scope?: Scope,
  options: {
    /**
     * Serve even when the configuration fails closed, as long as the token signing keys
     * themselves are sound (the health report must be readable exactly then).
     */
    whenFailingClosed?: boolean
    /** The resource the route belongs to: its tokens' `aud` (default: the REST API). */
    resource?: ResourceName
  } = {},
): MiddlewareHandler<AppEnv> {
  const resource = options.resource ?? 'api'
  return async function requireAuth(c, next) {
    const closed = failClosed(c)
    const keysSound = !c
      .get('services')
      .config.findings.some(
        (f) =>
          f.severity === 'fatal' &&
          /JWT_SECRET|JWT_SIGNING_KEY|PUBLIC_URL|APP_ENV|VERCEL_ENV|ENVIRONMENT|NODE_ENV/.test(
            f.variable,
          ),
      )
    if (closed && !(options.whenFailingClosed && keysSound)) throw closed
    const claims = await authenticate(c, resource)
    // The principal every service call of this request carries (requestScope): a delegated
    // token serves its one user only, whichever route or tool it reaches.
    c.set('agentId', claims.client_id)
    if (claims.act) c.set('actingFor', claims.sub)

    if (scope && !hasScope(claims.scope, scope)) {
      throw new ProblemError({
        status: 403,
        code: 'insufficient_scope',
        detail: `This route needs the ${scope} scope`,
        headers: {
          'WWW-Authenticate': bearerChallenge(issuerFor(c)[resource], {
            error: 'insufficient_scope',
            error_description: `This route needs the ${scope} scope`,
            scope,
          }),
        },
      })
    }

    await consumeAgentRequest(c, claims.client_id)
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
  for (const name in limitHeaders) {
    prepareHeader(c, name.toLowerCase() as Lowercase<string>, limitHeaders[name]!)
  }
}
