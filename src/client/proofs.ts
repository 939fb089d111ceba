// What the SDK signs with the agent's keys: RFC 7523 client assertions (`private_key_jwt`, for
// an agent that registered its public key) and RFC 9449 DPoP proofs (for sender-constrained
// tokens). Keys come in as WebCrypto keys and never leave; each assertion and each proof is
// made fresh (its own `jti`), so a retry never replays one. Signed with WebCrypto directly (a
// compact JWS is three base64url parts): the SDK ships without runtime dependencies.
import { base64 } from './encoding.ts'

const base64url = (bytes: Uint8Array) =>
  base64(bytes).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '')
const encodeJson = (value: unknown) => base64url(new TextEncoder().encode(JSON.stringify(value)))

/** WebCrypto's parameters for signing with `alg` (RFC 7518 §3; ECDSA gives JOSE's r||s). */
const SIGN_PARAMS: Record<string, AlgorithmIdentifier | EcdsaParams | RsaPssParams> = {
  ES256: { name: 'ECDSA', hash: 'SHA-256' } as EcdsaParams,
  ES384: { name: 'ECDSA', hash: 'SHA-384' } as EcdsaParams,
  EdDSA: { name: 'Ed25519' },
  PS256: { name: 'RSA-PSS', saltLength: 32 } as RsaPssParams,
  RS256: { name: 'RSASSA-PKCS1-v1_5' },
}

/** A compact JWS (RFC 7515 §7.1) of `payload` under `header`, signed with `key`. */
async function signJws(
  header: Record<string, unknown>,
  payload: Record<string, unknown>,
  key: CryptoKey,
): Promise<string> {
  const input = `${encodeJson(header)}.${encodeJson(payload)}`
  const signature = await crypto.subtle.sign(
    SIGN_PARAMS[String(header.alg)]!,
    key,
    new TextEncoder().encode(input),
  )
  return `${input}.${base64url(new Uint8Array(signature))}`
}

/** The public members of a key's JWK (RFC 7518 §6): what a DPoP proof's header carries. */
async function publicJwk(publicKey: CryptoKey): Promise<Record<string, unknown>> {
  const { kty, crv, x, y, n, e } = await crypto.subtle.exportKey('jwk', publicKey)
  return Object.fromEntries(
    Object.entries({ kty, crv, x, y, n, e }).filter(([, v]) => v !== undefined),
  )
}

/** The JWS algorithm of a WebCrypto private key, as the server accepts it. */
export function algorithmOf(key: CryptoKey): string {
  const algorithm = key.algorithm as { name: string; namedCurve?: string; hash?: { name: string } }
  if (algorithm.name === 'ECDSA' && algorithm.namedCurve === 'P-256') return 'ES256'
  if (algorithm.name === 'ECDSA' && algorithm.namedCurve === 'P-384') return 'ES384'
  if (algorithm.name === 'Ed25519') return 'EdDSA'
  if (algorithm.name === 'RSA-PSS' && algorithm.hash?.name === 'SHA-256') return 'PS256'
  if (algorithm.name === 'RSASSA-PKCS1-v1_5' && algorithm.hash?.name === 'SHA-256') return 'RS256'
  throw new TypeError(`Unsupported key algorithm ${algorithm.name}`)
}

/**
 * A client assertion (RFC 7523 §2.2, §3): `iss` = `sub` = the agent, `aud` = the token
 * endpoint (the server also accepts its issuer), a 60-second `exp`, a fresh `jti`. `now` in ms.
 */
export function clientAssertion(
  privateKey: CryptoKey,
  agentId: string,
  audience: string,
  now: number,
): Promise<string> {
  const iat = Math.floor(now / 1000)
  return signJws(
    { alg: algorithmOf(privateKey), typ: 'JWT' },
    { iss: agentId, sub: agentId, aud: audience, jti: crypto.randomUUID(), iat, exp: iat + 60 },
    privateKey,
  )
}

export interface DpopProver {
  /**
   * A proof for one request (RFC 9449 §4.2): its method and URL (query and fragment dropped),
   * `iat` from `now` (ms), the access token's hash (`ath`) when one is sent with it, and the
   * server's latest nonce, if it gave one.
   */
  proof(method: string, url: string, now: number, accessToken?: string): Promise<string>
  /** Keeps the server's `DPoP-Nonce` (RFC 9449 §8), if the response carries one. */
  remember(response: Response): void
  /** Whether `response` asks for a proof with a nonce it has just given (worth one retry). */
  wantsNonce(response: Response): boolean
}

export function dpopProver(keyPair: CryptoKeyPair): DpopProver {
  const alg = algorithmOf(keyPair.privateKey)
  let jwk: Promise<Record<string, unknown>> | undefined
  let nonce: string | undefined
  return {
    remember(response) {
      nonce = response.headers.get('dpop-nonce') ?? nonce
    },
    wantsNonce(response) {
      if (!response.headers.has('dpop-nonce')) return false
      // 401 at a resource (RFC 9449 §9), 400 at the token endpoint (§8).
      return (
        /use_dpop_nonce/.test(response.headers.get('www-authenticate') ?? '') ||
        response.status === 400
      )
    },
    async proof(method, url, now, accessToken) {
      jwk ??= publicJwk(keyPair.publicKey)
      const target = new URL(url)
      const claims: Record<string, unknown> = {
        jti: crypto.randomUUID(),
        htm: method,
        htu: `${target.origin}${target.pathname}`,
        iat: Math.floor(now / 1000),
      }
      if (accessToken !== undefined) claims.ath = await tokenHash(accessToken)
      if (nonce !== undefined) claims.nonce = nonce
      return signJws({ alg, typ: 'dpop+jwt', jwk: await jwk }, claims, keyPair.privateKey)
    },
  }
}

async function tokenHash(token: string): Promise<string> {
  return base64url(
    new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(token))),
  )
}
