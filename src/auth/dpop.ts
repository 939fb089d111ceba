// RFC 9449 DPoP proofs: a JWT (`typ: dpop+jwt`) signed by the client's key, carrying that
// public key (`jwk`), the request's method (`htm`) and URL (`htu`), when it was made (`iat`),
// a once-only `jti`, the access token's hash (`ath`) at a resource, and the server's nonce
// when one is required. Pure: the proof, what the request was and now() in; the key's RFC 7638
// thumbprint (`jkt`, what a token is bound to) and the `jti` to record out, or a DpopError.
import { calculateJwkThumbprint, decodeProtectedHeader, EmbeddedJWK, jwtVerify } from 'jose'
import { isStorableString } from '../contract/storable.ts'
import { base64url, sha256 } from '../kernel/bytes.ts'
import { CLIENT_KEY_ALGS } from './client-assertion.ts'

/** Why a proof was refused; logged by name, answered as `invalid_dpop_proof`. */
export class DpopError extends Error {
  readonly reason: string

  constructor(reason: string) {
    super(`DPoP proof refused: ${reason}`)
    this.name = 'DpopError'
    this.reason = reason
  }
}

/**
 * Proof keys already imported, by `alg` and key (see `proofKeyId`): a client signs with one key
 * for long.
 */
export interface DpopKeyCache {
  get(id: string): { key: CryptoKey; jkt: string } | undefined
  set(id: string, entry: { key: CryptoKey; jkt: string }): void
}

export interface DpopProof {
  /** RFC 7638 SHA-256 thumbprint of the proof's key (base64url). */
  jkt: string
  jti: string
  /** Until when (ms) the `jti` must be remembered: past that the proof is too old anyway. */
  rememberUntil: number
}

/** JWK members only a private or symmetric key has: never in a proof (RFC 9449 §4.3 item 6). */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k']

/**
 * RFC 9449 §4.3 `htu`: the URL without query and fragment, normalized as the RFC asks servers
 * to (RFC 3986 §6.2.2–6.2.3): scheme and host lowercased, default port and dot segments dropped
 * (the URL parser does these), percent-encoded unreserved characters decoded and the remaining
 * escapes' hex uppercased, so `/a%2db` and `/a-b` are one URL.
 */
export function htuOf(url: string): string {
  const u = new URL(url)
  const path = u.pathname.replace(/%([0-9A-Fa-f]{2})/g, (encoded, hex: string) => {
    const char = String.fromCharCode(Number.parseInt(hex, 16))
    return /^[A-Za-z0-9\-._~]$/.test(char) ? char : encoded.toUpperCase()
  })
  return `${u.origin}${path}`
}

/** The curve each ECDSA algorithm signs with (RFC 7518 §3.4): a proof's key must be on it. */
const CURVE_OF: Record<string, string> = { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' }

/** base64url(SHA-256(access token)): the `ath` a proof at a resource carries (§4.2). */
export async function accessTokenHash(token: string): Promise<string> {
  return base64url(await sha256(token))
}

/** RFC 7638 §3.2: the members a key's thumbprint covers, by `kty`. */
const THUMBPRINT_MEMBERS: Record<string, readonly string[]> = {
  EC: ['crv', 'kty', 'x', 'y'],
  OKP: ['crv', 'kty', 'x'],
  RSA: ['e', 'kty', 'n'],
}

/**
 * Where a proof's key is cached: its `alg` and the key's thumbprint members, as JSON (no two
 * keys share one), or undefined — not cached — when the JWK has any other member. DPoP clients
 * send exactly those members; another member (`key_ops`, `use`, `ext`) may change how the key
 * imports, and padding one would let a single client fill the cache with large ids of one key.
 */
function proofKeyId(alg: unknown, jwk: Record<string, unknown>): string | undefined {
  const kty = String(jwk.kty)
  const members = Object.hasOwn(THUMBPRINT_MEMBERS, kty) ? THUMBPRINT_MEMBERS[kty] : undefined
  if (!members || Object.keys(jwk).length !== members.length) return undefined
  const values: unknown[] = [alg]
  for (const member of members) {
    const value = jwk[member]
    if (typeof value !== 'string') return undefined
    values.push(value)
  }
  return JSON.stringify(values)
}

/**
 * What one cached proof key is charged against DPOP_KEY_CACHE_MAX_BYTES: its id (2 bytes a
 * character) and 1 KiB for the imported key, whose size the platform does not tell.
 */
export function proofKeyBytes(id: string): number {
  return 2 * id.length + 1024
}

/**
 * Checks one DPoP proof (RFC 9449 §4.3): one header value; `typ` dpop+jwt; an allowed
 * asymmetric `alg`; a public `jwk` that verifies the signature; `jti`; `htm` = `method`; `htu` =
 * `url` (query and fragment ignored); `iat` no older than `maxAgeSeconds` and no further ahead
 * than the tolerance; `ath` = `accessToken`'s hash when one is given (and none otherwise);
 * a `nonce` that `nonceHolds` accepts when the server requires one. `now` in ms. Throws DpopError; a missing or
 * wrong nonce is DpopError('nonce') (answered with `use_dpop_nonce`).
 */
export async function verifyDpopProof(
  proof: string,
  expected: {
    method: string
    url: string
    now: number
    maxAgeSeconds: number
    toleranceSeconds: number
    accessToken?: string
    /** When the server requires nonces: whether the proof's `nonce` is a current one. */
    nonceHolds?: (nonce: unknown) => Promise<boolean>
    /** Where imported proof keys are kept (their import and thumbprint cost more than a check). */
    keys?: DpopKeyCache
  },
): Promise<DpopProof> {
  // Several DPoP headers arrive joined by commas; a JWT has none.
  if (proof.includes(',') || proof.length > 8192) throw new DpopError('malformed')
  let payload: Record<string, unknown>
  let jwk: Record<string, unknown>
  let cacheId: string | undefined
  let known: { key: CryptoKey; jkt: string } | undefined
  let imported: CryptoKey | undefined
  try {
    const header = decodeProtectedHeader(proof)
    jwk = (header.jwk ?? {}) as Record<string, unknown>
    if (PRIVATE_MEMBERS.some((m) => m in jwk)) throw new DpopError('private_key')
    // A key that names another curve than its algorithm's would bind the token to a
    // thumbprint of a key no one can import.
    const curve = CURVE_OF[String(header.alg)]
    if (curve !== undefined && jwk.crv !== curve) throw new DpopError('key_mismatch')
    cacheId = proofKeyId(header.alg, jwk)
    known = cacheId === undefined ? undefined : expected.keys?.get(cacheId)
    const options = {
      typ: 'dpop+jwt',
      algorithms: [...CLIENT_KEY_ALGS],
      requiredClaims: ['jti', 'htm', 'htu', 'iat'],
      // iat is judged below, against the proof's own window.
      currentDate: new Date(expected.now),
    }
    if (known) {
      payload = (await jwtVerify(proof, known.key, options)).payload as Record<string, unknown>
    } else {
      const result = await jwtVerify(proof, EmbeddedJWK, options)
      payload = result.payload as Record<string, unknown>
      imported = result.key as CryptoKey
    }
  } catch (err) {
    if (err instanceof DpopError) throw err
    throw new DpopError(err instanceof Error && 'code' in err ? String(err.code) : 'malformed')
  }
  const { jti, htm, htu, iat, ath, nonce } = payload
  // Recorded in Redis: never a string a store might refuse (bad input is not an outage).
  if (typeof jti !== 'string' || jti.length < 1 || jti.length > 256 || !isStorableString(jti)) {
    throw new DpopError('jti')
  }
  if (htm !== expected.method) throw new DpopError('htm')
  if (typeof htu !== 'string' || !sameHtu(htu, expected.url)) throw new DpopError('htu')
  const nowSeconds = expected.now / 1000
  if (typeof iat !== 'number' || iat > nowSeconds + expected.toleranceSeconds) {
    throw new DpopError('iat')
  }
  if (iat < nowSeconds - expected.maxAgeSeconds - expected.toleranceSeconds) {
    throw new DpopError('iat')
  }
  if (expected.accessToken !== undefined) {
    if (ath !== (await accessTokenHash(expected.accessToken))) throw new DpopError('ath')
  } else if (ath !== undefined) {
    throw new DpopError('ath')
  }
  if (expected.nonceHolds && !(await expected.nonceHolds(nonce))) throw new DpopError('nonce')
  let jkt = known?.jkt
  if (jkt === undefined) {
    jkt = await calculateJwkThumbprint(jwk as Parameters<typeof calculateJwkThumbprint>[0])
    if (imported && cacheId !== undefined) expected.keys?.set(cacheId, { key: imported, jkt })
  }
  return {
    jkt,
    jti,
    rememberUntil: (iat + expected.maxAgeSeconds + 2 * expected.toleranceSeconds) * 1000,
  }
}

function sameHtu(presented: string, expected: string): boolean {
  try {
    return htuOf(presented) === htuOf(expected)
  } catch {
    return false
  }
}
