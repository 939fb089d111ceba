// Base64 and form encoding by hand: `btoa`/`atob` work on Latin-1 strings only and `Buffer`
// is Node's, while this has to run unchanged in Node, browsers and Workers.

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'

export function base64(bytes: Uint8Array): string {
  let out = ''
  for (let i = 0; i < bytes.length; i += 3) {
    const a = bytes[i]!
    const b = bytes[i + 1]
    const c = bytes[i + 2]
    const n = (a << 16) | ((b ?? 0) << 8) | (c ?? 0)
    out += ALPHABET[(n >> 18) & 63]! + ALPHABET[(n >> 12) & 63]!
    out += b === undefined ? '=' : ALPHABET[(n >> 6) & 63]!
    out += c === undefined ? '=' : ALPHABET[n & 63]!
  }
  return out
}

/** Decodes base64url (or base64), padded or not; undefined when it is not valid. */
export function base64UrlDecode(text: string): Uint8Array | undefined {
  const clean = text.replace(/=+$/, '').replace(/-/g, '+').replace(/_/g, '/')
  if (/[^A-Za-z0-9+/]/.test(clean) || clean.length % 4 === 1) return undefined
  const bytes = new Uint8Array(Math.floor((clean.length * 3) / 4))
  let buffer = 0
  let bits = 0
  let index = 0
  for (const char of clean) {
    buffer = (buffer << 6) | ALPHABET.indexOf(char)
    bits += 6
    if (bits >= 8) {
      bits -= 8
      bytes[index++] = (buffer >> bits) & 0xff
    }
  }
  return bytes
}

/** application/x-www-form-urlencoded encoding of one value (space as `+`). */
export function formEncode(value: string): string {
  return new URLSearchParams([['', value]]).toString().slice(1)
}

/** RFC 6749 §2.3.1: Basic over the form-encoded client id and secret. */
export function basicAuthorization(clientId: string, clientSecret: string): string {
  const pair = `${formEncode(clientId)}:${formEncode(clientSecret)}`
  return `Basic ${base64(new TextEncoder().encode(pair))}`
}

/**
 * The `jti` of a JWT, read from its payload WITHOUT verifying anything: the SDK only needs it
 * to name the token when revoking it, and the server is the one that checks.
 */
export function jwtId(token: string): string | undefined {
  const payload = token.split('.')[1]
  const bytes = payload === undefined ? undefined : base64UrlDecode(payload)
  if (!bytes) return undefined
  try {
    const claims: unknown = JSON.parse(new TextDecoder().decode(bytes))
    if (claims !== null && typeof claims === 'object' && 'jti' in claims) {
      return typeof claims.jti === 'string' && claims.jti !== '' ? claims.jti : undefined
    }
  } catch {
    // not a JWT: nothing to name
  }
  return undefined
}
