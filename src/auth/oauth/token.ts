// The token endpoints' rules, once a request is parsed: client authentication (one call),
// the client credentials and refresh grants (RFC 6749 §4.4, §6), and revocation (RFC 7009).
// Every failure is a ProblemError in OAuth's terms (./errors.ts); the routes only read the
// request, spend the failure budget and write the answer.
import type { Config } from '../../config/index.ts'
import { ProblemError } from '../../contract/problem.ts'
import {
  ACCESS_TOKEN_TYPE,
  type ExchangedTokenResponse,
  type TokenResponse,
} from '../../contract/token.ts'
import { type Database, isDatabaseOutage } from '../../db/client.ts'
import { databaseWriteOutcome } from '../../db/outcome.ts'
import type { Clock } from '../../kernel/clock.ts'
import type { EventBus } from '../../kernel/events.ts'
import type { Logger } from '../../kernel/log.ts'
import type { CallScope } from '../../kernel/scope.ts'
import {
  type AccessClaims,
  issueAccessToken,
  TokenError,
  verifyAccessToken,
} from '../access-token.ts'
import { issuedAtFor } from '../agent-status.ts'
import { AssertionError, verifyClientAssertion } from '../client-assertion.ts'
import { type AgentRecord, agentRecord, authenticateAgent, findAgent } from '../credentials.ts'
import { DpopError, type DpopProof, verifyDpopProof } from '../dpop.ts'
import { dpopNonceHolds, issueDpopNonce } from '../dpop-nonce.ts'
import type { KeyRing } from '../keys.ts'
import { TOKEN_PATH } from '../metadata.ts'
import { tokenRefusal } from '../principal.ts'
import {
  familyBinding,
  type IssuedGrant,
  issueRefreshToken,
  looksLikeRefreshToken,
  revokeRefreshToken,
  rotateRefreshToken,
} from '../refresh-token.ts'
import { ReplayCacheFull } from '../replay.ts'
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
 * Database outages on the token path are 503s, never a 401 that blames the agent. `write`, for
 * a call that writes, says what may have happened and what a retry does: a write the store
 * may have run after we stopped waiting (a timeout, a lost connection: `databaseWriteOutcome`)
 * is `outcome_unknown` with that text; one it certainly did not run, `database_unavailable`.
 * Anything else (a rejected statement) is a defect: it goes on to the 500 handler, which logs
 * it.
 */
export async function databaseCall<T>(work: () => Promise<T>, write?: string): Promise<T> {
  try {
    return await work()
  } catch (err) {
    if (err instanceof ProblemError || !isDatabaseOutage(err)) throw err
    if (write !== undefined && databaseWriteOutcome(err) === 'unknown') {
      throw temporarilyUnavailable('outcome_unknown', `The token store did not answer: ${write}`, 5)
    }
    throw temporarilyUnavailable('database_unavailable', 'The token store is unavailable', 5)
  }
}

/**
 * The agent `credentials` name, if they are right and it is active (its status is remembered
 * for the isolate's auth checks); else 401 invalid_client, one answer for every reason. A
 * secret opens only an agent without a registered key; an assertion (RFC 7523) only one with.
 */
export async function authenticateClient(
  deps: TokenDeps,
  credentials: Credentials,
  scope: CallScope,
  issuer: Issuer,
): Promise<AgentRecord> {
  const db = requireDatabase(deps)
  const agent =
    credentials.assertion !== undefined
      ? await assertedAgent(deps, db, credentials.agentId, credentials.assertion, scope, issuer)
      : await databaseCall(() =>
          authenticateAgent(
            db,
            deps.config.agentSecret!,
            credentials.agentId,
            credentials.secret,
            scope,
          ),
        )
  if (!agent) throw oauthError('invalid_client', INVALID_CLIENT)
  deps.auth.agents.remember(
    agent.id,
    { active: true, tokensNotBefore: agent.tokensNotBefore },
    deps.clock.now(),
  )
  return agent
}

/**
 * RFC 7523 `private_key_jwt`: the agent, if it is active, registered a key, the assertion holds
 * (src/auth/client-assertion.ts: aud = the issuer or the token endpoint) and its `jti` was never
 * used before; else undefined.
 */
async function assertedAgent(
  deps: TokenDeps,
  db: Database,
  agentId: string,
  assertion: string,
  scope: CallScope,
  issuer: Issuer,
): Promise<AgentRecord | undefined> {
  const { config, clock } = deps
  const agent = await databaseCall(() => findAgent(db, agentId, scope))
  if (!agent?.active || !agent.publicJwk) return undefined
  const now = clock.now()
  const tolerance = config.tunables.tokenClockToleranceSeconds
  let verified: { jti: string; exp: number }
  try {
    verified = await verifyClientAssertion(assertion, agent.publicJwk, {
      clientId: agent.id,
      audiences: [issuer.issuer, `${issuer.issuer}${TOKEN_PATH}`],
      now,
      toleranceSeconds: tolerance,
      maxLifetimeSeconds: config.tunables.clientAssertionMaxLifetimeSeconds,
    })
  } catch (err) {
    if (!(err instanceof AssertionError)) throw err
    deps.log.info('client assertion refused', { reason: err.reason })
    return undefined
  }
  const first = await firstUse(
    deps,
    'client-assertion',
    `${agent.id}\u0000${verified.jti}`,
    (verified.exp + tolerance) * 1000,
    scope,
  )
  if (!first) {
    deps.log.info('client assertion refused', { reason: 'replayed' })
    return undefined
  }
  return agentRecord(agent)
}

/**
 * The DPoP key (RFC 7638 thumbprint) the token request proves possession of, or undefined
 * when it carries no proof and none is `required`. Throws `invalid_dpop_proof` for a missing
 * (when required), invalid or replayed proof (RFC 9449 §4.3, §5).
 */
async function dpopKey(
  deps: TokenDeps,
  context: GrantContext,
  call: CallScope,
  required: boolean,
): Promise<string | undefined> {
  if (context.dpopProof === undefined) {
    if (required) throw oauthError('invalid_dpop_proof', 'A DPoP proof is required')
    return undefined
  }
  const { tunables } = deps.config
  const now = deps.clock.now()
  const nonceTtl = tunables.dpopNonceTtlSeconds
  const keys = nonceTtl > 0 ? await ring(deps) : undefined
  let proof: DpopProof
  try {
    proof = await verifyDpopProof(context.dpopProof, {
      method: 'POST',
      url: `${context.issuer.issuer}${TOKEN_PATH}`,
      now,
      maxAgeSeconds: tunables.dpopProofMaxAgeSeconds,
      toleranceSeconds: tunables.tokenClockToleranceSeconds,
      ...(keys && { nonceHolds: (n: unknown) => dpopNonceHolds(keys, n, now, nonceTtl) }),
    })
  } catch (err) {
    if (!(err instanceof DpopError)) throw err
    deps.log.info('DPoP proof refused', { reason: err.reason })
    if (err.reason === 'nonce' && keys) {
      // RFC 9449 §8: the error names the nonce to use, in the DPoP-Nonce header.
      const { problem } = oauthError('use_dpop_nonce', 'Sign the DPoP proof with the DPoP-Nonce')
      throw new ProblemError({
        ...problem,
        headers: { 'DPoP-Nonce': await issueDpopNonce(keys, now, nonceTtl) },
      })
    }
    throw oauthError('invalid_dpop_proof', 'The DPoP proof is invalid')
  }
  if (
    !(await firstUse(
      deps,
      'dpop-proof',
      `${proof.jkt}\u0000${proof.jti}`,
      proof.rememberUntil,
      call,
    ))
  ) {
    deps.log.info('DPoP proof refused', { reason: 'replayed' })
    throw oauthError('invalid_dpop_proof', 'The DPoP proof was used before')
  }
  return proof.jkt
}

/** A once-only identifier's first use (src/auth/replay.ts); a full record is a 503. */
export async function firstUse(
  deps: Pick<TokenDeps, 'auth' | 'clock'>,
  kind: 'client-assertion' | 'dpop-proof',
  id: string,
  expiresAt: number,
  scope: CallScope,
): Promise<boolean> {
  try {
    return await deps.auth.replays.firstUse(kind, id, expiresAt, deps.clock.now(), scope)
  } catch (err) {
    if (!(err instanceof ReplayCacheFull)) throw err
    throw temporarilyUnavailable(
      'auth_unavailable',
      'This instance cannot record more one-time proofs right now; nothing was done. Retry later',
      5,
    )
  }
}

/** What the grants hear from the route: whom to name as issuer, and who authenticated. */
export interface GrantContext {
  /** The deployment's identity (issuer, resources) as the request sees it. */
  issuer: Issuer
  /** The client authenticated: from here on a refusal is no guess at its credentials. */
  onClient(agentId: string): void
  /** The request's `DPoP` header (RFC 9449 §4), if any. */
  dpopProof?: string
}

/**
 * The target a token request names by `resource` (RFC 8707; the parser takes one per
 * request) and/or `audience` (RFC 8693 §2.1, a logical name, which many servers also take on
 * other grants; this deployment's services are named by their resource identifiers), or
 * undefined when it names none, as this deployment spells it. A `resource` is a URI, compared
 * in its RFC 3986 normal form, so `https://api.example/` and `HTTPS://api.example` are the API
 * (§6.2.2 case, percent-encoding and dot segments; §6.2.3 an empty path is `/`, a default port
 * none) and `…/mcp/` is another path; an `audience` is a logical name, compared as it is
 * spelled. A token here has one audience: a name that is not one of this
 * deployment's resources, or a `resource` and an `audience` naming two targets, is
 * `invalid_target` (RFC 8707 §2, RFC 8693 §2.2.2).
 */
function requestedTarget(
  issuer: Issuer,
  resource: string | undefined,
  audience: string | undefined,
): string | undefined {
  const ours = (name: string | undefined, parameter: 'resource' | 'audience') => {
    if (name === undefined) return undefined
    const normal = parameter === 'resource' ? normalUri(name) : name
    const target =
      normal === undefined
        ? undefined
        : issuer.resources.find((r) => (parameter === 'resource' ? normalUri(r) : r) === normal)
    if (!target) {
      throw oauthError(
        'invalid_target',
        `Unknown ${parameter}; this server's are ${issuer.resources.join(' and ')}`,
      )
    }
    return target
  }
  const byResource = ours(resource, 'resource')
  const byAudience = ours(audience, 'audience')
  if (byResource && byAudience && byResource !== byAudience) {
    throw oauthError('invalid_target', 'resource and audience name different targets')
  }
  return byResource ?? byAudience
}

/**
 * `scheme://host[:port][/path]` (an ASCII host name, a dotted IPv4 address or a bracketed IPv6
 * one; no userinfo, query or fragment) in RFC 3986 normal form: scheme and host in lower case,
 * a default or empty port dropped, an empty path as `/`, dot segments removed (§6.2.2–6.2.3),
 * and in the path percent-encoded unreserved characters decoded, the others' hex in capitals
 * (§6.2.2.2).
 * Undefined for anything else, and for what the WHATWG URL parser would rewrite beyond case
 * (`127.1`, `2130706433`, a trailing dot, full-width digits): no URI names those hosts.
 */
function normalUri(name: string): string | undefined {
  // RFC 3986 §3: no userinfo, query or fragment; the path only of pchar and "/". (The URL
  // parser would also strip control characters and spaces, and read a backslash as "/".)
  const parts =
    /^([a-z][a-z\d+.-]*):\/\/([a-z\d.-]+|\[[\da-f:.]+\])(?::\d*)?((?:\/(?:[\w.~!$&'()*+,;=:@-]|%[\da-f]{2})*)*)$/i.exec(
      name,
    )
  if (!parts) return undefined
  let url: URL
  try {
    url = new URL(name)
  } catch {
    return undefined
  }
  if (url.hostname !== parts[2]!.toLowerCase()) return undefined
  const path = url.pathname.replace(/%([\da-f]{2})/gi, (_, hex: string) => {
    const char = String.fromCharCode(Number.parseInt(hex, 16))
    return /[\w.~-]/.test(char) ? char : `%${hex.toUpperCase()}`
  })
  return `${url.protocol}//${url.host}${path}`
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
    /** RFC 9449: the DPoP key the access token is bound to. */
    jkt?: string
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
    jkt: input.jkt,
  })
  deps.events.emit({ type: 'token.issued', grant, agentId: input.agentId })
  return {
    access_token: token,
    token_type: input.jkt ? 'DPoP' : 'Bearer',
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
): Promise<TokenResponse | ExchangedTokenResponse> {
  switch (request.grant) {
    case 'client_credentials':
      return clientCredentialsGrant(deps, request, scope, context)
    case 'refresh_token':
      return refreshGrant(deps, request, scope, context)
    case 'token_exchange':
      return exchangeGrant(deps, request, scope, context)
  }
}

async function clientCredentialsGrant(
  deps: TokenDeps,
  request: Extract<TokenRequest, { grant: 'client_credentials' }>,
  call: CallScope,
  context: GrantContext,
): Promise<TokenResponse> {
  const agent = await authenticateClient(deps, request.credentials, call, context.issuer)
  context.onClient(agent.id)
  const resource = requestedTarget(context.issuer, request.resource, request.audience)
  const scopes = grantScopes(request.scope, agent.allowedScopes)
  if (!scopes) throw oauthError('invalid_scope', 'A requested scope is not allowed for this agent')
  const scope = formatScopes(scopes)
  const jkt = await dpopKey(deps, context, call, agent.dpopRequired)
  const issued = await databaseCall(
    () =>
      issueRefreshToken(
        requireDatabase(deps),
        {
          agentId: agent.id,
          scope,
          environment: deps.config.environment,
          ttlSeconds: deps.config.tunables.refreshTokenTtlSeconds,
          resource,
          jkt,
        },
        call.trace,
      ),
    'a refresh token may have been issued that no one received; retrying is safe',
  )
  // Deactivated between the check of its credentials and now: as if the check had seen it.
  if (!issued) throw oauthError('invalid_client', INVALID_CLIENT)
  return tokens(deps, 'client_credentials', {
    issuer: context.issuer,
    agentId: agent.id,
    scope,
    audience: resource ?? context.issuer.api,
    issued,
    jkt,
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
  if (!credentials?.agentId || !(credentials.secret || credentials.assertion)) {
    throw oauthError('invalid_client', 'Client authentication is required to refresh')
  }
  const client = await authenticateClient(deps, credentials, call, context.issuer)
  context.onClient(client.id)
  // Checked before the token is touched: a refused request spends nothing.
  const resource = requestedTarget(context.issuer, request.resource, request.audience)
  // A bound family refreshes only with a proof by its key (RFC 9449 §5).
  const bound = await databaseCall(() =>
    familyBinding(requireDatabase(deps), request.refreshToken, deps.config.environment, call.trace),
  )
  const jkt = await dpopKey(deps, context, call, client.dpopRequired || Boolean(bound))
  if (bound && jkt !== bound) {
    throw oauthError('invalid_dpop_proof', 'The refresh token is bound to another DPoP key')
  }
  const graceSeconds = deps.config.tunables.refreshReuseGraceSeconds
  const rotation = await databaseCall(
    () =>
      rotateRefreshToken(
        requireDatabase(deps),
        request.refreshToken,
        {
          environment: deps.config.environment,
          ttlSeconds: deps.config.tunables.refreshTokenTtlSeconds,
          graceSeconds,
          clientId: client.id,
          scopes: parseScopes(request.scope),
        },
        call.trace,
      ),
    // Presented again within the grace period, the spent token gets a fresh pair (CONTRACT.md);
    // after it (or with no grace period), a re-use revokes the family.
    graceSeconds > 0
      ? `the refresh token may have been rotated; retry with the same refresh token within ${graceSeconds} s`
      : 'the refresh token may have been rotated, and presenting it again would revoke its family; ask for new tokens with client credentials',
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
    jkt,
  })
}

/** The one answer for an unknown user and a user the agent holds no grant for (no oracle). */
const NO_SUCH_SUBJECT = 'The requested subject is unknown or not granted to this agent'
const BAD_SUBJECT_TOKEN = 'The subject token is invalid, expired or revoked'

/**
 * RFC 8693 token exchange: the agent's own access token (`actor_token` when sent, else
 * `subject_token`; both must be valid and the agent's) for a token that acts for
 * `requested_subject`, a user the agent holds a grant for. `sub` = user, `act.sub` = agent,
 * scope at most the presented token's, expiry at most its own and DELEGATED_TOKEN_TTL_SECONDS.
 * A delegated token may be exchanged again only for its own user. Revoking the agent's token,
 * its family or the grant ends the delegated token as it ends the agent's (src/auth/principal.ts).
 * Throws invalid_grant (also for an unknown user or no grant: one answer), invalid_scope,
 * invalid_target, invalid_client, 503s.
 */
async function exchangeGrant(
  deps: TokenDeps,
  request: Extract<TokenRequest, { grant: 'token_exchange' }>,
  call: CallScope,
  context: GrantContext,
): Promise<ExchangedTokenResponse> {
  const { config, clock } = deps
  const db = requireDatabase(deps)
  // Client authentication is optional (the agent's token proves who it is); when sent, it
  // must name the token's agent, as must a bare `client_id` (a client authenticating as none).
  const { credentials } = request
  const authenticates = Boolean(credentials?.secret || credentials?.assertion)
  const client = authenticates
    ? await authenticateClient(deps, credentials!, call, context.issuer)
    : credentials?.agentId
      ? { id: credentials.agentId }
      : undefined
  // A client that proved who it is has made no guess, whatever the grant's fate: its failure
  // budget is given back even if its tokens turn out to be another agent's.
  if (authenticates && client) context.onClient(client.id)
  const now = clock.now()
  const keys = await ring(deps)
  const presented = [request.subjectToken, ...(request.actorToken ? [request.actorToken] : [])]
  const tokens: AccessClaims[] = []
  for (const token of presented) {
    try {
      tokens.push(
        await verifyAccessToken(keys, token, {
          issuer: context.issuer.issuer,
          audiences: context.issuer.resources,
          environment: config.environment,
          now,
          toleranceSeconds: config.tunables.tokenClockToleranceSeconds,
          maxLifetimeSeconds: config.tunables.accessTokenTtlSeconds,
        }),
      )
    } catch (err) {
      if (!(err instanceof TokenError)) throw err
      throw oauthError('invalid_grant', BAD_SUBJECT_TOKEN)
    }
  }
  const agentId = tokens[0]!.client_id
  if (tokens.some((t) => t.client_id !== agentId) || (client && client.id !== agentId)) {
    throw oauthError('invalid_grant', 'The tokens were not issued to this client')
  }
  const refusals = await Promise.all(tokens.map((t) => tokenRefusal(deps, t, now, call)))
  if (refusals.some(Boolean)) throw oauthError('invalid_grant', BAD_SUBJECT_TOKEN)
  context.onClient(agentId)
  // A delegated token acts for its user only: never re-exchanged for another.
  const delegated = tokens.find((t) => t.act)
  if (delegated && delegated.sub !== request.requestedSubject) {
    throw oauthError('invalid_grant', 'A delegated token cannot be exchanged for another user')
  }
  const subject = tokens[0]!
  const resource =
    requestedTarget(context.issuer, request.resource, request.audience) ?? subject.aud
  const narrowest = tokens.reduce<string[]>(
    (allowed, t) => allowed.filter((s) => parseScopes(t.scope).includes(s)),
    parseScopes(subject.scope),
  )
  const scopes = grantScopes(request.scope, narrowest)
  if (!scopes || scopes.length === 0) {
    throw oauthError('invalid_scope', 'The requested scope exceeds the presented token’s')
  }
  // An unknown user and one without a grant: the same lookup, the same answer.
  const granted = await databaseCall(() =>
    deps.auth.grants.check(db, agentId, request.requestedSubject, now, call),
  )
  if (!granted) throw oauthError('invalid_grant', NO_SUCH_SUBJECT)
  const scope = formatScopes(scopes)
  // A bound token is exchanged only with a proof by its key; the new token is bound to it. An
  // agent that must use DPoP (its row says so now, whatever its token says) gets no unbound one.
  const bound = tokens.find((t) => t.cnf)?.cnf?.jkt
  const mustBind =
    bound !== undefined ||
    (await databaseCall(() => findAgent(db, agentId, call)))?.dpopRequired === true
  const jkt = await dpopKey(deps, context, call, mustBind)
  if (bound !== undefined && (jkt !== bound || tokens.some((t) => t.cnf?.jkt !== bound))) {
    throw oauthError('invalid_dpop_proof', 'The presented tokens are bound to another DPoP key')
  }
  const { token, claims } = await issueAccessToken(keys, {
    issuer: context.issuer.issuer,
    audience: resource,
    agentId,
    scope,
    environment: config.environment,
    ttlSeconds: Math.min(
      config.tunables.delegatedTokenTtlSeconds,
      config.tunables.accessTokenTtlSeconds,
    ),
    now,
    familyId: subject.sid,
    actingFor: request.requestedSubject,
    parentJti: delegated?.parent_jti ?? tokens.find((t) => !t.act)?.jti ?? subject.jti,
    notAfter: Math.min(...tokens.map((t) => t.exp)),
    jkt,
  })
  deps.events.emit({ type: 'token.issued', grant: 'token_exchange', agentId })
  return {
    access_token: token,
    token_type: jkt ? 'DPoP' : 'Bearer',
    issued_token_type: ACCESS_TOKEN_TYPE,
    expires_in: claims.exp - claims.iat,
    expires_at: new Date(claims.exp * 1000).toISOString(),
    scope,
    environment: config.environment,
  }
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
      'the revocation may or may not have been made; retry it',
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
      if (claims.client_id === agentId) {
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
