// Access-token time bounds, agent status rules and the secret hash.
import { SignJWT } from 'jose'
import { describe, expect, test } from 'vitest'
import { TokenError, verifyAccessToken } from '../../../src/auth/access-token.ts'
import { issuedAtFor, statusRefusal } from '../../../src/auth/agent-status.ts'
import { createKeyRing, keyId } from '../../../src/auth/keys.ts'
import {
  hashAgentSecret,
  legacySha256Hash,
  PBKDF2_ITERATIONS,
  verifyAgentSecret,
} from '../../../src/auth/secret-hash.ts'
import { Secret } from '../../../src/kernel/secret.ts'

const SECRET = 'a-jwt-secret-for-the-unit-tests-of-tokens-0123'
const NOW = Date.UTC(2026, 0, 1)
const nowS = NOW / 1000

async function token(claims: Record<string, unknown>) {
  return new SignJWT({
    iss: 'https://api.example.com',
    aud: 'https://api.example.com',
    sub: 'agent-1',
    client_id: 'agent-1',
    scope: 'context:read',
    env: 'production',
    jti: 'jti-1',
    iat: nowS,
    nbf: nowS,
    exp: nowS + 900,
    ...claims,
  })
    .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: await keyId(new Secret(SECRET)) })
    .sign(new TextEncoder().encode(SECRET))
}

async function verify(jwt: string) {
  return verifyAccessToken(await createKeyRing({ jwtSecret: new Secret(SECRET) }), jwt, {
    issuer: 'https://api.example.com',
    audiences: ['https://api.example.com', 'https://api.example.com/mcp'],
    environment: 'production',
    now: NOW,
    toleranceSeconds: 30,
    maxLifetimeSeconds: 900,
  })
}

async function reason(jwt: string) {
  try {
    await verify(jwt)
    return 'accepted'
  } catch (err) {
    return err instanceof TokenError ? err.reason : 'other'
  }
}

describe('access-token bounds', () => {
  test('a token within every bound is accepted', async () => {
    expect(await reason(await token({}))).toBe('accepted')
    expect(await reason(await token({ iat: nowS + 30, nbf: nowS, exp: nowS + 930 }))).toBe(
      'accepted',
    )
  })

  test.each([
    ['iat ten years ahead', { iat: nowS + 10 * 365 * 86400, nbf: nowS }, 'not_yet_valid'],
    ['iat just past the tolerance', { iat: nowS + 31 }, 'not_yet_valid'],
    ['exp a century ahead', { exp: nowS + 100 * 365 * 86400 }, 'lifetime'],
    ['a lifetime one second too long', { exp: nowS + 901 }, 'lifetime'],
    ['a sub with a NUL', { sub: 'agent\u0000x' }, 'claims'],
    ['a jti with an unpaired surrogate', { jti: 'j\ud800' }, 'claims'],
    ['a sid that is not a string', { sid: 7 }, 'claims'],
    ['an over-long sub', { sub: 'a'.repeat(129) }, 'claims'],
    ['no client_id (RFC 9068 §2.2)', { client_id: undefined }, 'claims'],
    ['an audience of someone else', { aud: 'https://elsewhere.example' }, 'claims'],
    [
      'an audience list (ours only as one of several)',
      { aud: ['https://api.example.com', 'x'] },
      'claims',
    ],
  ])('%s → refused (%s)', async (_name, claims, why) => {
    expect(await reason(await token(claims))).toBe(why)
  })
})

describe('agent status', () => {
  test('inactive agents and tokens issued before an agent-wide revocation are refused', () => {
    const at = NOW + 400 // the revocation, 400 ms into a second
    expect(statusRefusal({ active: false, tokensNotBefore: null }, nowS)).toBe('agent_inactive')
    expect(statusRefusal({ active: true, tokensNotBefore: at }, nowS)).toBe('revoked')
    expect(statusRefusal({ active: true, tokensNotBefore: at }, nowS - 60)).toBe('revoked')
    expect(statusRefusal({ active: true, tokensNotBefore: null }, nowS)).toBeUndefined()
    // A token issued after the revocation, even within the same second, is not refused.
    const iat = issuedAtFor(NOW + 500, at)
    expect(iat).toBe(nowS + 1)
    expect(statusRefusal({ active: true, tokensNotBefore: at }, iat)).toBeUndefined()
    expect(issuedAtFor(NOW + 5000, at)).toBe(nowS + 5)
    expect(issuedAtFor(NOW + 500, null)).toBe(nowS)
  })
})

describe('agent secret hashes', () => {
  test('PBKDF2-SHA256, salted: two hashes of one secret differ, both verify', async () => {
    const a = await hashAgentSecret('s3cret')
    const b = await hashAgentSecret('s3cret')
    expect(a).toMatch(
      new RegExp(`^pbkdf2-sha256\\$${PBKDF2_ITERATIONS}\\$[\\w-]{22}\\$[\\w-]{43}$`),
    )
    expect(a).not.toBe(b)
    expect(await verifyAgentSecret(a, 's3cret')).toEqual({ matches: true, upgrade: false })
    expect(await verifyAgentSecret(a, 's3creT')).toEqual({ matches: false, upgrade: false })
  })

  test('the seed’s sha256 hashes still verify, and ask to be upgraded; cheaper PBKDF2 too', async () => {
    const legacy = await legacySha256Hash('old-secret')
    expect(await verifyAgentSecret(legacy, 'old-secret')).toEqual({ matches: true, upgrade: true })
    expect(await verifyAgentSecret(legacy, 'other')).toEqual({ matches: false, upgrade: false })
    const cheap = await hashAgentSecret('s', 1000)
    expect(await verifyAgentSecret(cheap, 's')).toEqual({ matches: true, upgrade: true })
  })

  test('unreadable or over-costly stored values never match', async () => {
    for (const stored of ['', 'plain', 'pbkdf2-sha256$99999999$abc$def', 'sha256$short']) {
      expect((await verifyAgentSecret(stored, 'x')).matches).toBe(false)
    }
    const tooDear = (await hashAgentSecret('x')).replace(`$${PBKDF2_ITERATIONS}$`, '$9000000$')
    expect((await verifyAgentSecret(tooDear, 'x')).matches).toBe(false)
  })
})
