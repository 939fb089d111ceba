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
import {
  issueRefreshToken,
  looksLikeRefreshToken,
  revokeRefreshToken,
  rotateRefreshToken,
} from '../refresh-token.ts'
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

function requireDatabase(deps: TokenDeps): Database {
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

async function tokens(
  deps: TokenDeps,
  grant: 'client_credentials' | 'refresh_token',
  agent: { id: string; tokensNotBefore: number | null },
  scope: string,
  refresh: { token: string; familyId: string; expiresAt: number },
): Promise<TokenResponse> {
  const { config, clock } = deps
  const now = clock.now()
  const { token, claims } = await issueAccessToken(await deps.auth.keys(), {
    agentId: agent.id,
    scope,
    environment: config.environment,
    ttlSeconds: config.tunables.accessTokenTtlSeconds,
    now,
    familyId: refresh.familyId,
    issuedAt: issuedAtFor(now, agent.tokensNotBefore),
  })
  deps.events.emit({ type: 'token.issued', grant, agentId: agent.id })
  return {
    access_token: token,
    token_type: 'Bearer',
    expires_in: claims.exp - Math.floor(now / 1000),
    expires_at: new Date(claims.exp * 1000).toISOString(),
    refresh_token: refresh.token,
    refresh_expires_in: Math.round((refresh.expiresAt - now) / 1000),
    scope,
    environment: config.environment,
  }
}

/**
 * Tokens for a parsed token request: the client authenticates (`onClient` hears who it is,
 * before the grant is judged), then its grant is checked. Throws OAuth's errors
 * (invalid_client, invalid_scope, invalid_grant) and 503s.
 */
export function issueTokens(
  deps: TokenDeps,
  request: TokenRequest,
  scope: CallScope,
  onClient: (agentId: string) => void,
): Promise<TokenResponse> {
  return request.grant === 'client_credentials'
    ? clientCredentialsGrant(deps, request.credentials, request.scope, scope, onClient)
    : refreshGrant(deps, request.refreshToken, request.scope, request.credentials, scope, onClient)
}

async function clientCredentialsGrant(
  deps: TokenDeps,
  credentials: Credentials,
  requestedScope: string | undefined,
  call: CallScope,
  onClient: (agentId: string) => void,
): Promise<TokenResponse> {
  const agent = await authenticateClient(deps, credentials, call)
  onClient(agent.id)
  const scopes = grantScopes(requestedScope, agent.allowedScopes)
  if (!scopes) throw oauthError('invalid_scope', 'A requested scope is not allowed for this agent')
  const scope = formatScopes(scopes)
  const refresh = await databaseCall(() =>
    issueRefreshToken(
      requireDatabase(deps),
      {
        agentId: agent.id,
        scope,
        environment: deps.config.environment,
        ttlSeconds: deps.config.tunables.refreshTokenTtlSeconds,
        now: deps.clock.now(),
      },
      call.trace,
    ),
  )
  return tokens(deps, 'client_credentials', agent, scope, refresh)
}

async function refreshGrant(
  deps: TokenDeps,
  refreshToken: string,
  requestedScope: string | undefined,
  credentials: Credentials | undefined,
  call: CallScope,
  onClient: (agentId: string) => void,
): Promise<TokenResponse> {
  // RFC 6749 §6: a confidential client must authenticate; the token must then be its own.
  if (!credentials?.agentId || !credentials.secret) {
    throw oauthError('invalid_client', 'Client authentication is required to refresh')
  }
  const client = await authenticateClient(deps, credentials, call)
  onClient(client.id)
  const now = deps.clock.now()
  const rotation = await databaseCall(() =>
    rotateRefreshToken(
      requireDatabase(deps),
      refreshToken,
      {
        environment: deps.config.environment,
        ttlSeconds: deps.config.tunables.refreshTokenTtlSeconds,
        now,
        clientId: client.id,
        scopes: parseScopes(requestedScope),
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
  // Never more than the original grant, and never more than the agent is allowed today (the
  // rotation has checked both; this computes what to grant).
  const original = parseScopes(rotation.scope).filter((s) => rotation.allowedScopes.includes(s))
  const scopes = grantScopes(requestedScope, original)
  if (!scopes || scopes.length === 0) {
    throw new Error('a rotated refresh token has no scope to grant')
  }
  return tokens(
    deps,
    'refresh_token',
    { id: rotation.agentId, tokensNotBefore: rotation.tokensNotBefore },
    formatScopes(scopes),
    rotation.next,
  )
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
): Promise<void> {
  const { auth, config, clock } = deps
  const now = clock.now()
  let reach: RevocationReach | 'expired' | 'none' = 'none'
  let refreshRevoked = false

  if (looksLikeRefreshToken(token)) {
    const db = requireDatabase(deps)
    const familyId = await databaseCall(
      () => revokeRefreshToken(db, token, agentId, config.environment, now, scope.trace),
      true,
    )
    if (familyId) {
      refreshRevoked = true
      deps.events.emit({ type: 'token.revoked', kind: 'refresh' })
      reach = await revokeFamilyAccess(deps, agentId, familyId, scope)
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
