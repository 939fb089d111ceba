// The signing key and the keys accepted for verification, imported once per isolate.
//
// `kid` is a fingerprint of the secret (a truncated SHA-256 under a fixed label), so it names
// which secret signed a token without revealing it, and stays the same when today's
// current secret becomes tomorrow's `…_PREVIOUS`.

import { base64url, sha256 } from '../kernel/bytes.ts'
import type { Secret } from '../kernel/secret.ts'

export interface KeyRing {
  signing: { kid: string; key: CryptoKey }
  /** kid → key, for the current and (during a rotation) the previous secret. */
  verifying: ReadonlyMap<string, CryptoKey>
}

async function importHmac(secret: Secret, usages: KeyUsage[]): Promise<CryptoKey> {
  // The HMAC key is the UTF-8 bytes of the secret, so any JWT library holding the secret can
  // verify our tokens (CONTRACT.md "Access tokens").
  const raw = new TextEncoder().encode(secret.reveal())
  return crypto.subtle.importKey('raw', raw, { name: 'HMAC', hash: 'SHA-256' }, false, usages)
}

export async function keyId(secret: Secret): Promise<string> {
  return base64url(await sha256(`agent-api/kid\u0000${secret.reveal()}`)).slice(0, 16)
}

export async function createKeyRing(current: Secret, previous?: Secret): Promise<KeyRing> {
  const kid = await keyId(current)
  const verifying = new Map<string, CryptoKey>([[kid, await importHmac(current, ['verify'])]])
  if (previous) verifying.set(await keyId(previous), await importHmac(previous, ['verify']))
  return { signing: { kid, key: await importHmac(current, ['sign']) }, verifying }
}
