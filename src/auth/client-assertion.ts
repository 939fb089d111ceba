// RFC 7523 §2.2 / §3 `private_key_jwt`: a key-bound agent authenticates with a JWT signed by
// the private half of the JWK it registered. Pure: the assertion, the key and now() in; its
// `jti` and expiry out (the caller records the `jti` as used), or a refusal.
import { decodeProtectedHeader, errors, importJWK, jwtVerify } from 'jose'
import { isStorableString } from '../contract/storable.ts'
import type { PublicJwk } from './credentials.ts'

/**
 * What a client's key may sign with, for client assertions and DPoP proofs alike: asymmetric
 * algorithms only (a shared-secret MAC here would be a secret by another name).
 */
export const CLIENT_KEY_ALGS = ['ES256', 'ES384', 'EdDSA', 'Ed25519', 'PS256', 'RS256'] as const

export class AssertionError extends Error {
  readonly reason: string

  constructor(reason: string) {
    super(`client assertion refused: ${reason}`)
    this.name = 'AssertionError'
    this.reason = reason
  }
}

/**
 * The assertion's `jti` and `exp` (s) once it holds: signed by `jwk` with an allowed algorithm,
 * `iss` = `sub` = `clientId`, `aud` one of `audiences` (the issuer or the token endpoint),
 * `exp` in the future but no more than `maxLifetimeSeconds` away (and after `iat` by no more,
 * when `iat` is present, which must not be in the future), `nbf` passed. Times in seconds;
 * `now` in ms. Throws AssertionError.
 */
export async function verifyClientAssertion(
  assertion: string,
  jwk: PublicJwk,
  options: {
    clientId: string
    audiences: readonly string[]
    now: number
    toleranceSeconds: number
    maxLifetimeSeconds: number
  },
): Promise<{ jti: string; exp: number }> {
  let payload: Record<string, unknown>
  try {
    const { alg } = decodeProtectedHeader(assertion)
    if (typeof jwk.alg === 'string' && jwk.alg !== alg) throw new AssertionError('algorithm')
    const result = await jwtVerify(assertion, async (header) => importJWK(jwk, header.alg), {
      algorithms: [...CLIENT_KEY_ALGS],
      issuer: options.clientId,
      subject: options.clientId,
      audience: [...options.audiences],
      requiredClaims: ['exp', 'jti'],
      clockTolerance: options.toleranceSeconds,
      currentDate: new Date(options.now),
    })
    payload = result.payload as Record<string, unknown>
  } catch (err) {
    if (err instanceof AssertionError) throw err
    throw new AssertionError(err instanceof errors.JOSEError ? err.code : 'malformed')
  }
  const { jti, exp, iat } = payload
  // Recorded in Redis: never a string a store might refuse (bad input is not an outage).
  if (
    typeof jti !== 'string' ||
    jti.length < 1 ||
    jti.length > 256 ||
    !isStorableString(jti) ||
    typeof exp !== 'number'
  ) {
    throw new AssertionError('claims')
  }
  const nowSeconds = options.now / 1000
  if (exp - nowSeconds > options.maxLifetimeSeconds + options.toleranceSeconds) {
    throw new AssertionError('lifetime')
  }
  if (typeof iat === 'number' && exp - iat > options.maxLifetimeSeconds) {
    throw new AssertionError('lifetime')
  }
  // Issued later than now (beyond the tolerance): a clock to distrust, or an assertion minted
  // ahead for later use; the lifetime checks above cannot see it (exp − iat is then small).
  if (typeof iat === 'number' && iat > nowSeconds + options.toleranceSeconds) {
    throw new AssertionError('issued_in_future')
  }
  return { jti, exp }
}
