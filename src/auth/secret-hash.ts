// The stored form of an agent's own secret: a salted, slow hash made with WebCrypto, so a leak
// of the agents table does not hand out working credentials.
//
//   pbkdf2-sha256$<iterations>$<salt, base64url>$<derived key, base64url>
//
// PBKDF2-HMAC-SHA256 (RFC 8018 §5.2; NIST SP 800-132) is the slow hash both runtimes' WebCrypto
// offer. 100,000 iterations is the most workerd's WebCrypto accepts (it refuses more), and
// about 30–60 ms of CPU per check there; the secrets themselves are 256 random bits, so the
// hash is depth, not their only defence. The iteration count is stored with each hash, so a
// later count verifies old hashes and upgrades them on use.
//
// The seed's `sha256$<base64url digest>` hashes still verify, and are upgraded on use.
import { base64url, fromBase64url, sha256, timingSafeEqual } from '../kernel/bytes.ts'

export const PBKDF2_ITERATIONS = 100_000
const SALT_BYTES = 16
const KEY_BYTES = 32
const PBKDF2 = /^pbkdf2-sha256\$(\d{1,7})\$([A-Za-z0-9_-]{16,64})\$([A-Za-z0-9_-]{43})$/
const LEGACY = /^sha256\$([A-Za-z0-9_-]{43})$/

async function pbkdf2(
  secret: string,
  salt: Uint8Array<ArrayBuffer>,
  iterations: number,
): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey(
    'raw',
    new TextEncoder().encode(secret),
    'PBKDF2',
    false,
    ['deriveBits'],
  )
  const bits = await crypto.subtle.deriveBits(
    { name: 'PBKDF2', hash: 'SHA-256', salt, iterations },
    key,
    KEY_BYTES * 8,
  )
  return new Uint8Array(bits)
}

/** A fresh salted hash of `secret` in the stored format. */
export async function hashAgentSecret(
  secret: string,
  iterations = PBKDF2_ITERATIONS,
): Promise<string> {
  const salt = crypto.getRandomValues(new Uint8Array(SALT_BYTES))
  const derived = await pbkdf2(secret, salt, iterations)
  return `pbkdf2-sha256$${iterations}$${base64url(salt)}$${base64url(derived)}`
}

/** The seed's format (unsalted SHA-256), kept only so tests can make one to upgrade. */
export async function legacySha256Hash(secret: string): Promise<string> {
  return `sha256$${base64url(await sha256(secret))}`
}

export interface SecretCheck {
  matches: boolean
  /** The stored hash is of an older kind or cost: store a fresh one (the secret matched). */
  upgrade: boolean
}

/**
 * Whether `presented` is the secret `stored` was made from, in time that does not depend on
 * where the two differ. An unreadable stored value never matches.
 */
export async function verifyAgentSecret(stored: string, presented: string): Promise<SecretCheck> {
  const modern = PBKDF2.exec(stored)
  if (modern) {
    const iterations = Number(modern[1])
    const salt = fromBase64url(modern[2]!)
    const expected = fromBase64url(modern[3]!)
    if (!salt || !expected || iterations < 1 || iterations > PBKDF2_ITERATIONS) {
      return { matches: false, upgrade: false }
    }
    const matches = timingSafeEqual(await pbkdf2(presented, salt, iterations), expected)
    return { matches, upgrade: matches && iterations < PBKDF2_ITERATIONS }
  }
  const legacy = LEGACY.exec(stored)
  const expected = legacy ? fromBase64url(legacy[1]!) : undefined
  if (!expected) return { matches: false, upgrade: false }
  const matches = timingSafeEqual(await sha256(presented), expected)
  return { matches, upgrade: matches }
}
