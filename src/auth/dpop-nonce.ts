// RFC 9449 §8–9 server-provided DPoP nonces, when DPOP_NONCE_TTL_SECONDS is set: a proof must
// then carry a nonce this deployment issued within the last two windows of that length, which
// bounds how far ahead a client (or a thief of its key) can make proofs. Stateless, so every
// isolate accepts every other's: a nonce is its window's number signed with the token signing
// key (`<window>.<kid>.<signature>`), verified with the key ring like a token.
import { base64url, fromBase64url } from '../kernel/bytes.ts'
import type { KeyRing, TokenAlgorithm } from './keys.ts'

const SIGNATURE: Record<TokenAlgorithm, AlgorithmIdentifier | EcdsaParams> = {
  ES256: { name: 'ECDSA', hash: 'SHA-256' } as EcdsaParams,
  EdDSA: { name: 'Ed25519' },
  HS256: { name: 'HMAC' },
}

const windowOf = (now: number, ttlSeconds: number) => Math.floor(now / (ttlSeconds * 1000))
const label = (window: number) => new TextEncoder().encode(`dpop-nonce:${window}`)

/** The nonce of the current window (`now` in ms), for the `DPoP-Nonce` header. */
export async function issueDpopNonce(
  ring: KeyRing,
  now: number,
  ttlSeconds: number,
): Promise<string> {
  const window = windowOf(now, ttlSeconds)
  const { alg, kid, key } = ring.signing
  const signature = await crypto.subtle.sign(SIGNATURE[alg], key, label(window))
  return `${window}.${kid}.${base64url(new Uint8Array(signature))}`
}

/** Whether `nonce` is one of ours from the current or the previous window. */
export async function dpopNonceHolds(
  ring: KeyRing,
  nonce: unknown,
  now: number,
  ttlSeconds: number,
): Promise<boolean> {
  if (typeof nonce !== 'string' || nonce.length > 512) return false
  const [windowText, kid, signatureText, ...rest] = nonce.split('.')
  if (rest.length || !windowText || !kid || !signatureText || !/^\d{1,15}$/.test(windowText)) {
    return false
  }
  const window = Number(windowText)
  const current = windowOf(now, ttlSeconds)
  if (window !== current && window !== current - 1) return false
  const entry = ring.verifying.get(kid)
  const signature = fromBase64url(signatureText)
  if (!entry || !signature) return false
  return crypto.subtle.verify(SIGNATURE[entry.alg], entry.key, signature, label(window))
}
