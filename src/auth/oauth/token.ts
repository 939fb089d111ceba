// The token endpoints' rules, once a request is parsed: client authentication (one call),
// the client credentials and refresh grants (RFC 6749 §4.4, §6), and revocation (RFC 7009).
// Every failure is a ProblemError in OAuth's terms (./errors.ts); the routes only read the
// request, spend the failure budget and write the answer.
import type { Config } from '../../config/index.ts'
import { ProblemError } from '../../contract/problem.ts'
import type { TokenResponse } from '../../contract/token.ts'
import { type Database, isDatabaseOutage } from '../../db/client.ts'
import type { Clock } from '../../kernel/clock.ts'
import type { EventBus } from '../../kernel/events.ts'
import type { Logger } from '../../kernel/log.ts'
import type { CallScope } from '../../kernel/scope.ts'
import { issueAccessToken, TokenError, verifyAccessToken } from '../access-token.ts'
import { issuedAtFor } from '../agent-status.ts'
import { type AgentRecord, authenticateAgent } from '../credentials.ts'
import type { KeyRing } from '../keys.ts'
import {
  type IssuedGrant,
  issueRefreshToken,
  looksLikeRefreshToken,
  revokeRefreshToken,
  rotateRefreshToken,
} from '../refresh-token.ts'
import type { Issuer } from '../resources.ts'
import { type RevocationReach, RevocationStoreFull } from '../revocation.ts'
import { formatScopes, grantScopes, parseScopes } from '../scopes.ts'
import type { AuthState } from '../state.ts'
import { INVALID_CLIENT, oauthError, temporarilyUnavailable } from './errors.ts'
import type { Credentials, TokenRequest } from './parse.ts'

/** What the token endpoints use, named one by one (the isolate's services have these). */
export interface TokenDeps {
  config: Pick<Config, 'environment' | 'tunables' | 'agentSecret'>
  clock: Clock
  events: EventBus
  log: Logger
  auth: AuthState
  /** Absent when no database is configured: the token endpoints then answer 503. */
  db?: Database
  /** Whether Upstash is configured (a revocation it could not take is then partial). */
  redis?: unknown
}

export function requireDatabase(deps: TokenDeps): Database {
  if (!deps.db) {
    throw temporarilyUnavailable('database_unavailable', 'No database is configured', 30)
  }
  return deps.db
}

/**
 * Database outages on the token path are 503s, never a 401 that blames the agent. A write that
 * timed out may have landed: `outcome_unknown` says so. Anything else (a rejected statement) is
 * a defect: it goes on to the 500 handler, which logs it.
 */
export async function databaseCall<T>(work: () => Promise<T>, write = false): Promise<T> {
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

/**
 * The agent `credentials` name, if they are right and it is active (its status is remembered
 * for the isolate's auth checks); else 401 invalid_client, one answer for every reason.
 */
export async function authenticateClient(
  deps: TokenDeps,
  credentials: Credentials,
  scope: CallScope,
): Promise<AgentRecord> {
  const db = requireDatabase(deps)
  const agent = await databaseCall(() =>
    authenticateAgent(db, deps.config.agentSecret!, credentials.agentId, credentials.secret, scope),
  )
  if (!agent) throw oauthError('invalid_client', INVALID_CLIENT)
  deps.auth.agents.remember(
    agent.id,
    { active: true, tokensNotBefore: agent.tokensNotBefore },
    deps.clock.now(),
  )
  return agent
}

/** What the grants hear from the route: whom to name as issuer, and who authenticated. */
export interface GrantContext {
  /** The deployment's identity (issuer, resources) as the request sees it. */
  issuer: Issuer
  /** The client authenticated: from here on a refusal is no guess at its credentials. */
  onClient(agentId: string): void
}

/**
 * The resource an RFC 8707 request names, or undefined when it names none (one per request:
 * the parser refuses more). Anything but one of this deployment's resources is
 * `invalid_target` (RFC 8707 §2).
 */
export function requestedResource(
  issuer: Issuer,
  resource: string | undefined,
): string | undefined {
  if (resource === undefined) return undefined
  if (!issuer.resources.includes(resource)) {
    throw oauthError(
      'invalid_target',
      `Unknown resource; this server's are ${issuer.resources.join(' and ')}`,
    )
  }
  return resource
}

async function tokens(
  deps: TokenDeps,
  grant: 'client_credentials' | 'refresh_token',
  input: {
    issuer: Issuer
    agentId: string
    scope: string
    audience: string
    issued: IssuedGrant
  },
): Promise<TokenResponse> {
  const { config, clock } = deps
  const { issued } = input
  const { token, claims } = await issueAccessToken(await ring(deps), {
    issuer: input.issuer.issuer,
    audience: input.audience,
    agentId: input.agentId,
    scope: input.scope,
    environment: config.environment,
    ttlSeconds: config.tunables.accessTokenTtlSeconds,
    now: clock.now(),
    familyId: issued.refresh.familyId,
    // The database's clock, as the agent-wide not-before is: a token issued before an
    // operator's revocation (even one racing it) carries an iat before it.
    issuedAt: issuedAtFor(issued.issuedAt, issued.tokensNotBefore),
  })
  deps.events.emit({ type: 'token.issued', grant, agentId: input.agentId })
  return {
    access_token: token,
    token_type: 'Bearer',
    expires_in: claims.exp - claims.iat,
    expires_at: new Date(claims.exp * 1000).toISOString(),
    refresh_token: issued.refresh.token,
    refresh_expires_in: config.tunables.refreshTokenTtlSeconds,
    scope: input.scope,
    environment: config.environment,
  }
}

/** The key ring, or a 503: keys that cannot be used are the configuration's fault. */
export async function ring(deps: Pick<TokenDeps, 'auth'>): Promise<KeyRing> {
  try {
    return await deps.auth.keys()
  } catch {
    throw temporarilyUnavailable(
      'configuration_error',
      'The token signing keys cannot be used; see the health report',
      300,
    )
  }
}

/**
 * Tokens for a parsed token request: the client authenticates (`context.onClient` hears who it
 * is, before the grant is judged), then its grant is checked. Throws OAuth's errors
 * (invalid_client, invalid_scope, invalid_grant, invalid_target) and 503s.
 */
export function issueTokens(
  deps: TokenDeps,
  request: TokenRequest,
  scope: CallScope,
  context: GrantContext,
): Promise<TokenResponse> {
  return request.grant === 'client_credentials'
    ? clientCredentialsGrant(deps, request, scope, context)
    : refreshGrant(deps, request, scope, context)
}

async function clientCredentialsGrant(
  deps: TokenDeps,
  request: Extract<TokenRequest, { grant: 'client_credentials' }>,
  call: CallScope,
  context: GrantContext,
): Promise<TokenResponse> {
  const agent = await authenticateClient(deps, request.credentials, call)
  context.onClient(agent.id)
  const resource = requestedResource(context.issuer, request.resource)
  const scopes = grantScopes(request.scope, agent.allowedScopes)
  if (!scopes) throw oauthError('invalid_scope', 'A requested scope is not allowed for this agent')
  const scope = formatScopes(scopes)
  const issued = await databaseCall(() =>
    issueRefreshToken(
      requireDatabase(deps),
      {
        agentId: agent.id,
        scope,
        environment: deps.config.environment,
        ttlSeconds: deps.config.tunables.refreshTokenTtlSeconds,
        resource,
      },
      call.trace,
    ),
  )
  // Deactivated between the check of its credentials and now: as if the check had seen it.
  if (!issued) throw oauthError('invalid_client', INVALID_CLIENT)
  return tokens(deps, 'client_credentials', {
    issuer: context.issuer,
    agentId: agent.id,
    scope,
    audience: resource ?? context.issuer.api,
    issued,
  })
}

async function refreshGrant(
  deps: TokenDeps,
  request: Extract<TokenRequest, { grant: 'refresh_token' }>,
  call: CallScope,
  context: GrantContext,
): Promise<TokenResponse> {
  // RFC 6749 §6: a confidential client must authenticate; the token must then be its own.
  const { credentials } = request
  if (!credentials?.agentId || !credentials.secret) {
    throw oauthError('invalid_client', 'Client authentication is required to refresh')
  }
  const client = await authenticateClient(deps, credentials, call)
  context.onClient(client.id)
  // Checked before the token is touched: a refused request spends nothing.
  const resource = requestedResource(context.issuer, request.resource)
  const rotation = await databaseCall(() =>
    rotateRefreshToken(
      requireDatabase(deps),
      request.refreshToken,
      {
        environment: deps.config.environment,
        ttlSeconds: deps.config.tunables.refreshTokenTtlSeconds,
        graceSeconds: deps.config.tunables.refreshReuseGraceSeconds,
        clientId: client.id,
        scopes: parseScopes(request.scope),
      },
      call.trace,
    ),
  )
  if (!rotation.ok) {
    if (rotation.revokedFamily) {
      deps.log.warn('refresh token reused: its family is revoked', { reason: rotation.reason })
      // The family's access tokens go with it (wherever this reaches; the answer is a 400 anyway).
      const { agentId, familyId } = rotation.revokedFamily
      await revokeFamilyAccess(deps, agentId, familyId, call)
    }
    deps.events.emit({ type: 'token.denied', grant: 'refresh_token', reason: rotation.reason })
    if (rotation.reason === 'wrong_client') {
      throw oauthError('invalid_grant', 'The refresh token was not issued to this client')
    }
    if (rotation.reason === 'scope_exceeded') {
      throw oauthError('invalid_scope', 'The requested scope exceeds the original grant')
    }
    throw oauthError('invalid_grant', 'The refresh token is invalid, expired or revoked')
  }
  if (rotation.grace) deps.log.info('refresh token presented again within the grace period')
  // Never more than the original grant, and never more than the agent is allowed today (the
  // rotation has checked both; this computes what to grant).
  const original = parseScopes(rotation.scope).filter((s) => rotation.allowedScopes.includes(s))
  const scopes = grantScopes(request.scope, original)
  if (!scopes || scopes.length === 0) {
    throw new Error('a rotated refresh token has no scope to grant')
  }
  // The family's resource unless the request names another (RFC 8707 §2.2); a family whose
  // resource this deployment no longer serves falls back to the API.
  const family =
    rotation.resource && context.issuer.resources.includes(rotation.resource)
      ? rotation.resource
      : undefined
  return tokens(deps, 'refresh_token', {
    issuer: context.issuer,
    agentId: rotation.agentId,
    scope: formatScopes(scopes),
    audience: resource ?? family ?? context.issuer.api,
    issued: rotation,
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

function revokeFamilyAccess(deps: TokenDeps, agentId: string, familyId: string, scope: CallScope) {
  const { auth, clock } = deps
  return recordRevocation(() =>
    auth.revocations.revokeFamily(agentId, familyId, clock.now(), auth.longestTokenLifeMs, scope),
  )
}

/**
 * Revokes `token` if it is one of `agentId`'s: a refresh token (with its family and every
 * access token of the family), an access token, or an access token's `jti`. Resolves when the
 * revocation holds everywhere; throws `revocation_partial` when Redis is configured but failed
 * and it holds only in this isolate (and, for a refresh token, in Postgres).
 */
export async function revoke(
  deps: TokenDeps,
  agentId: string,
  token: string,
  scope: CallScope,
  issuer: Issuer,
): Promise<void> {
  const { auth, config, clock } = deps
  const now = clock.now()
  let reach: RevocationReach | 'expired' | 'none' = 'none'
  let refreshRevoked = false

  if (looksLikeRefreshToken(token)) {
    const db = requireDatabase(deps)
    const familyId = await databaseCall(
      () => revokeRefreshToken(db, token, agentId, config.environment, scope.trace),
      true,
    )
    if (familyId) {
      refreshRevoked = true
      deps.events.emit({ type: 'token.revoked', kind: 'refresh' })
      reach = await revokeFamilyAccess(deps, agentId, familyId, scope)
    }
  } else if (token.split('.').length === 3) {
    try {
      const claims = await verifyAccessToken(await ring(deps), token, {
        issuer: issuer.issuer,
        audiences: issuer.resources,
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
            scope,
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
        scope,
      ),
    )
  }
  if (reach === 'global' || reach === 'isolate') {
    deps.events.emit({ type: 'token.revoked', kind: 'access' })
  }
  // Redis is configured but failed: the revocation holds in this isolate (and in Postgres for
  // a refresh token), not everywhere. A 200 would promise more, so the answer says what holds.
  if (reach === 'isolate' && deps.redis) {
    throw temporarilyUnavailable(
      'revocation_partial',
      refreshRevoked
        ? 'The refresh token is revoked; its access tokens are revoked on this instance only (the shared revocation store is unavailable). Retry to revoke them everywhere'
        : 'The token is revoked on this instance only (the shared revocation store is unavailable). Retry to revoke it everywhere',
      5,
    )
  }
}
