// The keys that sign access tokens and those accepted to verify them, imported once per
// isolate, and the JWKS that publishes the public ones (RFC 7517).
//
// With a signing key (a private JWK: ES256 on P-256, or EdDSA on Ed25519) the access tokens are
// verifiable by anyone holding the JWKS; its `kid` is the RFC 7638 thumbprint of the public key,
// so it names the key without a registry and stays the same when today's key becomes
// tomorrow's `…_PREVIOUS`. Without one, HS256 with the environment's JWT secret (the HMAC key is
// the secret's UTF-8 bytes, so any JWT library holding the secret can verify our tokens); its
// `kid` is a fingerprint of the secret (a truncated SHA-256 under a fixed label), and nothing
// is published.
import { calculateJwkThumbprint, type JWK } from 'jose'
import type { SigningAlgorithm, SigningKeySetting } from '../config/index.ts'
import { base64url, sha256 } from '../kernel/bytes.ts'
import type { Secret } from '../kernel/secret.ts'

export type TokenAlgorithm = SigningAlgorithm | 'HS256'

export interface VerificationKey {
  alg: TokenAlgorithm
  key: CryptoKey
}

export interface KeyRing {
  signing: { kid: string; alg: TokenAlgorithm; key: CryptoKey }
  /** kid → key, for the signing key and every key still accepted during a rotation. */
  verifying: ReadonlyMap<string, VerificationKey>
  /** The algorithms the verifying keys use: the only ones a token may name. */
  algorithms: readonly TokenAlgorithm[]
  /** The public keys, current first (RFC 7517 §5); empty when only HS256 is configured. */
  jwks: { keys: PublicJwk[] }
}

export interface PublicJwk {
  kty: string
  crv: string
  x: string
  y?: string
  kid: string
  alg: SigningAlgorithm
  use: 'sig'
}

/** The configured key material is unusable (found only when importing it). */
export class SigningKeyError extends Error {
  readonly variable: string

  constructor(variable: string, message: string) {
    super(`${variable} ${message}`)
    this.name = 'SigningKeyError'
    this.variable = variable
  }
}

const ALGORITHM: Record<SigningAlgorithm, EcKeyImportParams | Algorithm> = {
  ES256: { name: 'ECDSA', namedCurve: 'P-256' },
  EdDSA: { name: 'Ed25519' },
}
const SIGNATURE: Record<SigningAlgorithm, EcdsaParams | Algorithm> = {
  ES256: { name: 'ECDSA', hash: 'SHA-256' },
  EdDSA: { name: 'Ed25519' },
}

async function importHmac(secret: Secret, usages: KeyUsage[]): Promise<CryptoKey> {
  const raw = new TextEncoder().encode(secret.reveal())
  return crypto.subtle.importKey('raw', raw, { name: 'HMAC', hash: 'SHA-256' }, false, usages)
}

export async function keyId(secret: Secret): Promise<string> {
  return base64url(await sha256(`agent-api/kid\u0000${secret.reveal()}`)).slice(0, 16)
}

interface ImportedKeyPair {
  kid: string
  alg: SigningAlgorithm
  privateKey: CryptoKey
  publicKey: CryptoKey
  jwk: PublicJwk
}

/**
 * Imports a configured private JWK and proves its halves belong together (a signature made
 * with the private half verifies with the public half: a key whose `x`/`y` were pasted from
 * another key is refused here, whatever the runtime's importKey checks). Throws SigningKeyError.
 */
export async function importKeyPair(setting: SigningKeySetting): Promise<ImportedKeyPair> {
  const { variable, alg } = setting
  const jwk = JSON.parse(setting.jwk.reveal()) as JWK & { x: string; y?: string; crv: string }
  const pub = {
    kty: jwk.kty!,
    crv: jwk.crv,
    x: jwk.x,
    ...(jwk.y === undefined ? {} : { y: jwk.y }),
  }
  let privateKey: CryptoKey
  let publicKey: CryptoKey
  try {
    const { kty, crv, x, y, d } = jwk
    const priv = { kty, crv, x, d, ...(y === undefined ? {} : { y }) }
    privateKey = await crypto.subtle.importKey('jwk', priv, ALGORITHM[alg], false, ['sign'])
    publicKey = await crypto.subtle.importKey('jwk', pub, ALGORITHM[alg], false, ['verify'])
  } catch {
    throw new SigningKeyError(variable, 'cannot be imported as a private key of its type')
  }
  const probe = new TextEncoder().encode('agent-api/key-pair-check')
  const signature = await crypto.subtle.sign(SIGNATURE[alg], privateKey, probe)
  if (!(await crypto.subtle.verify(SIGNATURE[alg], publicKey, signature, probe))) {
    throw new SigningKeyError(variable, 'is not a key pair: its public half does not match d')
  }
  const kid = await calculateJwkThumbprint(pub, 'sha256')
  return { kid, alg, privateKey, publicKey, jwk: { ...pub, kid, alg, use: 'sig' } }
}

export interface KeyMaterial {
  signingKey?: SigningKeySetting
  signingKeyPrevious?: SigningKeySetting
  /** HS256: signs when no signing key is set. */
  jwtSecret?: Secret
  /** HS256: verifies during a secret rotation, or for one lifetime after moving to a key. */
  jwtPreviousSecret?: Secret
}

/**
 * The ring for the configured material: a signing key signs when there is one, else the JWT
 * secret. Rejects (SigningKeyError) when a key cannot be imported, or when nothing can sign.
 */
export async function createKeyRing(material: KeyMaterial): Promise<KeyRing> {
  const verifying = new Map<string, VerificationKey>()
  const keys: PublicJwk[] = []
  let signing: KeyRing['signing'] | undefined

  for (const setting of [material.signingKey, material.signingKeyPrevious]) {
    if (!setting) continue
    const pair = await importKeyPair(setting)
    if (setting === material.signingKey) {
      signing = { kid: pair.kid, alg: pair.alg, key: pair.privateKey }
    }
    if (verifying.has(pair.kid)) continue
    verifying.set(pair.kid, { alg: pair.alg, key: pair.publicKey })
    keys.push(pair.jwk)
  }
  const hmac = async (secret: Secret) => {
    const kid = await keyId(secret)
    verifying.set(kid, { alg: 'HS256', key: await importHmac(secret, ['verify']) })
    return kid
  }
  if (!signing && material.jwtSecret) {
    const kid = await hmac(material.jwtSecret)
    signing = { kid, alg: 'HS256', key: await importHmac(material.jwtSecret, ['sign']) }
  }
  if (material.jwtPreviousSecret) await hmac(material.jwtPreviousSecret)
  if (!signing) throw new SigningKeyError('JWT_SECRET', 'is not set, and no signing key is')
  const algorithms = [...new Set([...verifying.values()].map((v) => v.alg))]
  return { signing, verifying, algorithms, jwks: { keys } }
}
