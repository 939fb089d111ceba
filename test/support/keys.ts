// Signing keys for tests: fresh private JWKs as the deployment's variables hold them, and
// tokens signed with a scenario's own key (for forgeries and controls alike).
import { importJWK, type JWK, type JWTPayload, SignJWT } from 'jose'
import { keyId } from '../../src/auth/keys.ts'
import { Secret } from '../../src/kernel/secret.ts'

export type KeyAlgorithm = 'ES256' | 'EdDSA'

/** A new private JWK, as JSON in one line (what `…_JWT_SIGNING_KEY` holds). */
export async function newSigningKey(alg: KeyAlgorithm = 'ES256'): Promise<string> {
  const params = alg === 'ES256' ? { name: 'ECDSA', namedCurve: 'P-256' } : { name: 'Ed25519' }
  const pair = (await crypto.subtle.generateKey(params, true, ['sign', 'verify'])) as CryptoKeyPair
  const { kty, crv, x, y, d } = await crypto.subtle.exportKey('jwk', pair.privateKey)
  return JSON.stringify({ kty, crv, x, ...(y ? { y } : {}), d })
}

/** The public half of a private JWK (JSON), as the JWKS publishes it (without kid/alg). */
export function publicHalf(privateJwk: string): JWK {
  const { d: _, ...pub } = JSON.parse(privateJwk) as JWK
  return pub
}

/** A JWT signed with a private JWK (JSON) or an HS256 secret, header defaults as ours. */
export async function signWith(
  key: { jwk: string } | { secret: string },
  claims: JWTPayload,
  header: Record<string, unknown> = {},
): Promise<string> {
  if ('secret' in key) {
    return new SignJWT(claims)
      .setProtectedHeader({
        alg: 'HS256',
        typ: 'at+jwt',
        kid: await keyId(new Secret(key.secret)),
        ...header,
      })
      .sign(new TextEncoder().encode(key.secret))
  }
  const jwk = JSON.parse(key.jwk) as JWK
  const alg = jwk.kty === 'EC' ? 'ES256' : 'EdDSA'
  const { calculateJwkThumbprint } = await import('jose')
  const kid = await calculateJwkThumbprint(publicHalf(key.jwk), 'sha256')
  return new SignJWT(claims)
    .setProtectedHeader({ alg, typ: 'at+jwt', kid, ...header })
    .sign(await importJWK(jwk, alg))
}
