// Access tokens: HS256 JWTs with `typ: at+jwt` (RFC 9068), signed with the environment's
// current secret and verified against the current and previous ones. Verification pins the
// algorithm, issuer, audience and environment, requires every claim the contract names, and
// bounds the token in time: `iat` no later than now (plus the clock tolerance), `exp − iat` no
// longer than the configured lifetime. A token carries its refresh-token family as `sid` (the
// registered "session id" claim), so revoking the family revokes the token.
import { errors, jwtVerify, SignJWT } from 'jose'
import type { Environment } from '../config/environment.ts'
import { isStorableString } from '../contract/storable.ts'
import type { KeyRing } from './keys.ts'

export const AUDIENCE = 'agent-api'
export const issuerFor = (environment: Environment) => `agent-api/${environment}`

export interface AccessClaims {
  iss: string
  aud: string
  sub: string
  scope: string
  env: Environment
  jti: string
  iat: number
  nbf: number
  exp: number
  /** The refresh-token family this token was issued with (absent on tokens made elsewhere). */
  sid?: string
}

export async function issueAccessToken(
  ring: KeyRing,
  input: {
    agentId: string
    scope: string
    environment: Environment
    ttlSeconds: number
    now: number
    /** The refresh-token family issued alongside. */
    familyId: string
    /** Defaults to now; later only to clear an agent-wide revocation (see issuedAtFor). */
    issuedAt?: number
  },
): Promise<{ token: string; claims: AccessClaims }> {
  const iat = input.issuedAt ?? Math.floor(input.now / 1000)
  const claims: AccessClaims = {
    iss: issuerFor(input.environment),
    aud: AUDIENCE,
    sub: input.agentId,
    scope: input.scope,
    env: input.environment,
    jti: crypto.randomUUID(),
    iat,
    nbf: Math.min(iat, Math.floor(input.now / 1000)),
    exp: iat + input.ttlSeconds,
    sid: input.familyId,
  }
  const token = await new SignJWT({ ...claims })
    .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: ring.signing.kid })
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

const REQUIRED = ['iss', 'aud', 'sub', 'scope', 'env', 'jti', 'iat', 'nbf', 'exp'] as const

export async function verifyAccessToken(
  ring: KeyRing,
  token: string,
  options: {
    environment: Environment
    now: number
    toleranceSeconds: number
    /** The configured access-token lifetime: no token may claim to live longer. */
    maxLifetimeSeconds: number
    /** For revocation only: accept a token whose exp has passed. */
    allowExpired?: boolean
  },
): Promise<AccessClaims> {
  let payload: Record<string, unknown>
  try {
    const result = await jwtVerify(
      token,
      (header) => {
        const key = typeof header.kid === 'string' ? ring.verifying.get(header.kid) : undefined
        if (!key) throw new TokenError('unknown_kid')
        return key
      },
      {
        algorithms: ['HS256'],
        typ: 'at+jwt',
        issuer: issuerFor(options.environment),
        audience: AUDIENCE,
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
    !isIdentifier(claims.jti) ||
    (claims.sid !== undefined && !isIdentifier(claims.sid)) ||
    typeof claims.scope !== 'string' ||
    !isStorableString(claims.scope) ||
    typeof claims.exp !== 'number' ||
    typeof claims.nbf !== 'number' ||
    typeof claims.iat !== 'number'
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
