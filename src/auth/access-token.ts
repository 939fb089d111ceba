// Access tokens (RFC 9068): JWTs with `typ: at+jwt`, signed with the ring's signing key (ES256
// or EdDSA with a configured private key, HS256 with the environment's secret otherwise) and
// verified against the ring's keys. Verification pins the algorithms, the issuer, the audience
// (one of this deployment's resources; each route then requires its own) and the environment,
// requires every claim the contract names, and bounds the token in time: `iat` no later than now
// (plus the clock tolerance), `exp − iat` no longer than the configured lifetime. A token carries
// its refresh-token family as `sid` (the registered "session id" claim), so revoking the family
// revokes the token.
import { errors, jwtVerify, SignJWT } from 'jose'
import type { Environment } from '../config/environment.ts'
import { isStorableString } from '../contract/storable.ts'
import type { KeyRing } from './keys.ts'

export interface AccessClaims {
  /** The issuer: the deployment's public URL (RFC 8414 `issuer`). */
  iss: string
  /** The resource the token is for (RFC 8707, RFC 9068 §2.2): the API's or the MCP endpoint's. */
  aud: string
  sub: string
  /** The client the token was issued to (RFC 9068 §2.2): the agent. */
  client_id: string
  scope: string
  env: Environment
  jti: string
  iat: number
  nbf: number
  exp: number
  /** The refresh-token family this token was issued with (absent on tokens made elsewhere). */
  sid?: string
  /**
   * RFC 8693 §4.1: on a delegated token, the agent acting (`sub` is then the user it acts for;
   * `client_id` stays the agent).
   */
  act?: { sub: string }
  /** A delegated token: the `jti` of the agent's token it was exchanged for (revoking that ends it). */
  parent_jti?: string
  /** RFC 9449 §6.1: the thumbprint (RFC 7638) of the DPoP key the token is bound to. */
  cnf?: { jkt: string }
}

/** What makes a token more than the agent's own: delegation and a DPoP key binding. */
export interface TokenExtras {
  /** RFC 8693: the user the token acts for (its `sub`; the agent becomes `act.sub`). */
  actingFor?: string
  /** The agent's token a delegated one was exchanged for. */
  parentJti?: string
  /** RFC 9449: the DPoP key's thumbprint. */
  jkt?: string
  /** An expiry (s since the epoch) earlier than the lifetime gives: a delegated token's. */
  notAfter?: number
}

export async function issueAccessToken(
  ring: KeyRing,
  input: {
    issuer: string
    /** The resource the token is for (`aud`). */
    audience: string
    agentId: string
    scope: string
    environment: Environment
    ttlSeconds: number
    now: number
    /** The refresh-token family issued alongside (a delegated token: its agent token's). */
    familyId: string | undefined
    /** Defaults to now; later only to clear an agent-wide revocation (see issuedAtFor). */
    issuedAt?: number
  } & TokenExtras,
): Promise<{ token: string; claims: AccessClaims }> {
  const iat = input.issuedAt ?? Math.floor(input.now / 1000)
  const claims: AccessClaims = {
    iss: input.issuer,
    aud: input.audience,
    sub: input.actingFor ?? input.agentId,
    client_id: input.agentId,
    scope: input.scope,
    env: input.environment,
    jti: crypto.randomUUID(),
    iat,
    nbf: Math.min(iat, Math.floor(input.now / 1000)),
    exp: Math.min(iat + input.ttlSeconds, input.notAfter ?? Number.POSITIVE_INFINITY),
    sid: input.familyId,
  }
  if (input.actingFor !== undefined) claims.act = { sub: input.agentId }
  if (input.parentJti !== undefined) claims.parent_jti = input.parentJti
  if (input.jkt !== undefined) claims.cnf = { jkt: input.jkt }
  const token = await new SignJWT({ ...claims })
    .setProtectedHeader({ alg: ring.signing.alg, typ: 'at+jwt', kid: ring.signing.kid })
    .sign(ring.signing.key)
  return { token, claims }
}

/** Why a token was refused; logged and counted, never shown beyond "invalid_token". */
export type TokenRejection =
  | 'malformed'
  | 'unknown_kid'
  | 'bad_signature'
  | 'algorithm'
  | 'expired'
  | 'not_yet_valid'
  | 'claims'
  | 'environment'
  | 'lifetime'

export class TokenError extends Error {
  readonly reason: TokenRejection

  constructor(reason: TokenRejection) {
    super(`access token rejected: ${reason}`)
    this.name = 'TokenError'
    this.reason = reason
  }
}

const REQUIRED = [
  'iss',
  'aud',
  'sub',
  'client_id',
  'scope',
  'env',
  'jti',
  'iat',
  'nbf',
  'exp',
] as const

/** RFC 7515 §7.1: three base64url segments, unpadded (§2). */
const COMPACT_JWS = /^[\w-]+\.[\w-]+\.[\w-]+$/

export async function verifyAccessToken(
  ring: KeyRing,
  token: string,
  options: {
    issuer: string
    /** The resources a token of this deployment may be for; the caller checks which one. */
    audiences: readonly string[]
    environment: Environment
    now: number
    toleranceSeconds: number
    /** The configured access-token lifetime: no token may claim to live longer. */
    maxLifetimeSeconds: number
    /** For revocation only: accept a token whose exp has passed. */
    allowExpired?: boolean
  },
): Promise<AccessClaims> {
  // One spelling per token: jose also decodes padded or otherwise non-canonical segments.
  if (!COMPACT_JWS.test(token)) throw new TokenError('malformed')
  let payload: Record<string, unknown>
  try {
    const result = await jwtVerify(
      token,
      (header) => {
        const entry = typeof header.kid === 'string' ? ring.verifying.get(header.kid) : undefined
        if (!entry) throw new TokenError('unknown_kid')
        // A kid names one key of one algorithm: a token naming another (an HS256 "signature"
        // made with a public key as the secret, say) is refused before any verification.
        if (header.alg !== entry.alg) throw new TokenError('algorithm')
        return entry.key
      },
      {
        algorithms: [...ring.algorithms],
        typ: 'at+jwt',
        issuer: options.issuer,
        audience: [...options.audiences],
        requiredClaims: [...REQUIRED],
        clockTolerance: options.allowExpired ? Number.MAX_SAFE_INTEGER : options.toleranceSeconds,
        currentDate: new Date(options.now),
      },
    )
    payload = result.payload as Record<string, unknown>
  } catch (err) {
    throw err instanceof TokenError ? err : new TokenError(rejectionOf(err))
  }
  const claims = payload as Partial<AccessClaims>
  if (claims.env !== options.environment) throw new TokenError('environment')
  if (
    !isIdentifier(claims.sub) ||
    !isIdentifier(claims.client_id) ||
    typeof claims.aud !== 'string' ||
    !isIdentifier(claims.jti) ||
    (claims.sid !== undefined && !isIdentifier(claims.sid)) ||
    typeof claims.scope !== 'string' ||
    !isStorableString(claims.scope) ||
    typeof claims.exp !== 'number' ||
    typeof claims.nbf !== 'number' ||
    typeof claims.iat !== 'number' ||
    (claims.parent_jti !== undefined && !isIdentifier(claims.parent_jti)) ||
    !delegationHolds(claims) ||
    (claims.cnf !== undefined && !isThumbprint(claims.cnf?.jkt))
  ) {
    throw new TokenError('claims')
  }
  // Issued in the future (beyond the skew we tolerate), or claiming a longer life than any
  // token we issue: a forged or misissued token, refused (CONTRACT.md "Access tokens").
  const latestIat = Math.ceil(options.now / 1000) + options.toleranceSeconds
  if (claims.iat > latestIat) throw new TokenError('not_yet_valid')
  if (claims.exp - claims.iat > options.maxLifetimeSeconds) throw new TokenError('lifetime')
  return claims as AccessClaims
}

/**
 * A token without `act` is the agent's own (`sub` = `client_id`); with it, `act` is exactly
 * `{ sub: client_id }` (RFC 8693 §4.1) and `sub` names the user acted for.
 */
function delegationHolds(claims: Partial<AccessClaims>): boolean {
  if (claims.act === undefined) return claims.sub === claims.client_id
  const act = claims.act as unknown
  return (
    typeof act === 'object' &&
    act !== null &&
    Object.keys(act).length === 1 &&
    (act as { sub?: unknown }).sub === claims.client_id
  )
}

/** An RFC 7638 SHA-256 thumbprint, base64url: 43 characters. */
function isThumbprint(value: unknown): value is string {
  return typeof value === 'string' && /^[A-Za-z0-9_-]{43}$/.test(value)
}

/** The claims that name stored things (agent, token, family) are storable identifiers. */
function isIdentifier(value: unknown): value is string {
  return (
    typeof value === 'string' && value.length >= 1 && value.length <= 128 && isStorableString(value)
  )
}

function rejectionOf(err: unknown): TokenRejection {
  if (err instanceof errors.JWTExpired) return 'expired'
  if (err instanceof errors.JWTClaimValidationFailed) {
    return err.claim === 'nbf' || err.claim === 'iat' ? 'not_yet_valid' : 'claims'
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'bad_signature'
  if (err instanceof errors.JOSEAlgNotAllowed || err instanceof errors.JOSENotSupported) {
    return 'algorithm'
  }
  return 'malformed'
}
