// The pure rules of key-bound agents, with now() injected: RFC 9449 DPoP proofs, RFC 7523
// client assertions, and the once-only record of their `jti`s (per isolate).
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWTPayload, SignJWT } from 'jose'
import { describe, expect, test } from 'vitest'
import { AssertionError, verifyClientAssertion } from '../../../src/auth/client-assertion.ts'
import {
  accessTokenHash,
  DpopError,
  proofKeyBytes,
  verifyDpopProof,
} from '../../../src/auth/dpop.ts'
import { ReplayCache, ReplayCacheFull } from '../../../src/auth/replay.ts'
import { BoundedLru } from '../../../src/cache/lru.ts'

const NOW = Date.UTC(2026, 10, 29, 12, 0, 0)
const nowS = NOW / 1000
const URL_ = 'https://api.test/api/v1/agent/users/u1/context'
const key = await generateKeyPair('ES256', { extractable: true })
const jwk = await exportJWK(key.publicKey)

async function proof(claims: JWTPayload = {}, header: Record<string, unknown> = {}) {
  return new SignJWT({ jti: crypto.randomUUID(), htm: 'GET', htu: URL_, iat: nowS, ...claims })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk, ...header })
    .sign(key.privateKey)
}
const expected = { method: 'GET', url: URL_, now: NOW, maxAgeSeconds: 60, toleranceSeconds: 5 }
const reason = (p: Promise<unknown>) =>
  p.then(
    () => 'accepted',
    (err: unknown) =>
      err instanceof DpopError || err instanceof AssertionError ? err.reason : err,
  )

describe('verifyDpopProof (RFC 9449 §4.3)', () => {
  test('a good proof gives its key’s thumbprint and how long to remember its jti', async () => {
    const checked = await verifyDpopProof(await proof(), expected)
    expect(checked.jkt).toBe(await calculateJwkThumbprint(jwk))
    expect(checked.rememberUntil).toBe((nowS + 60 + 10) * 1000)
    // Query and fragment are not part of htu.
    await expect(
      verifyDpopProof(await proof({ htu: `${URL_}?a=1#x` }), { ...expected, url: `${URL_}?b=2` }),
    ).resolves.toBeDefined()
  })

  test('htu is compared after RFC 3986 normalization: case, default port, dot segments, unreserved escapes', async () => {
    const variants = [
      'HTTPS://API.test:443/api/v1/agent/users/u1/context',
      'https://api.test/api/v1/agent/users/./u1/context',
      'https://api.test/api/v1/agent/users/u%31/context',
      'https://api.test/api/v1/agent/users/u1/con%74ext',
    ]
    for (const htu of variants) {
      await expect(verifyDpopProof(await proof({ htu }), expected), htu).resolves.toBeDefined()
    }
    expect(await reason(verifyDpopProof(await proof({ htu: `${URL_}%2F` }), expected))).toBe('htu')
  })

  test('a key on another curve than its algorithm names is refused', async () => {
    const p384 = { ...jwk, crv: 'P-384' }
    expect(await reason(verifyDpopProof(await proof({}, { jwk: p384 }), expected))).toBe(
      'key_mismatch',
    )
  })

  test('a key cache: filled by the first proof, used by the next; a forgery under a cached header still fails', async () => {
    const entries = new Map<string, { key: CryptoKey; jkt: string }>()
    let hits = 0
    const keys = {
      get: (id: string) => {
        const hit = entries.get(id)
        if (hit) hits++
        return hit
      },
      set: (id: string, entry: { key: CryptoKey; jkt: string }) => void entries.set(id, entry),
    }
    const first = await verifyDpopProof(await proof(), { ...expected, keys })
    expect(entries.size).toBe(1)
    const second = await verifyDpopProof(await proof(), { ...expected, keys })
    expect(hits).toBe(1)
    expect(second.jkt).toBe(first.jkt)
    const { privateKey: other } = await generateKeyPair('ES256')
    const forged = await new SignJWT({ jti: 'f', htm: 'GET', htu: URL_, iat: nowS })
      .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk })
      .sign(other)
    expect(await reason(verifyDpopProof(forged, { ...expected, keys }))).toMatch(/SIGNATURE/)
  })

  test('the key cache keeps a key sent as its thumbprint members only, each charged its size', async () => {
    const cache = new BoundedLru<string, { key: CryptoKey; jkt: string }>({
      maxEntries: 1000,
      maxBytes: 4 * proofKeyBytes('x'.repeat(200)),
    })
    let hits = 0
    const keys = {
      get: (id: string) => {
        const hit = cache.get(id, NOW)?.value
        if (hit) hits++
        return hit
      },
      set: (id: string, entry: { key: CryptoKey; jkt: string }) =>
        void cache.set(id, entry, { now: NOW, ttlMs: 60_000, bytes: proofKeyBytes(id) }),
    }
    // A JWK with another member (padded here to most of a proof) is checked, never kept.
    const padded = await verifyDpopProof(
      await proof({}, { jwk: { ...jwk, kid: 'k'.repeat(4000) } }),
      {
        ...expected,
        keys,
      },
    )
    expect(padded.jkt).toBe(await calculateJwkThumbprint(jwk))
    expect(cache.size).toBe(0)
    // Exactly the members, in any order: one entry, then hits.
    const reordered = { y: jwk.y, x: jwk.x, kty: jwk.kty, crv: jwk.crv }
    await verifyDpopProof(await proof(), { ...expected, keys })
    await verifyDpopProof(await proof({}, { jwk: reordered }), { ...expected, keys })
    expect([cache.size, hits]).toEqual([1, 1])
    // Many clients' keys: the bytes stay within the bound, the newest kept.
    for (let i = 0; i < 12; i++) {
      const k = await generateKeyPair('ES256', { extractable: true })
      const own = await exportJWK(k.publicKey)
      const signed = await new SignJWT({ jti: `j${i}`, htm: 'GET', htu: URL_, iat: nowS })
        .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: own })
        .sign(k.privateKey)
      await verifyDpopProof(signed, { ...expected, keys })
      expect(cache.bytes).toBeLessThanOrEqual(4 * proofKeyBytes('x'.repeat(200)))
    }
    expect(cache.size).toBeGreaterThan(1)
  })

  test('with an access token: ath must be its hash; without one, no ath', async () => {
    const token = 'an-access-token'
    const ath = await accessTokenHash(token)
    await expect(
      verifyDpopProof(await proof({ ath }), { ...expected, accessToken: token }),
    ).resolves.toBeDefined()
    expect(await reason(verifyDpopProof(await proof(), { ...expected, accessToken: token }))).toBe(
      'ath',
    )
    expect(
      await reason(verifyDpopProof(await proof({ ath: 'x' }), { ...expected, accessToken: token })),
    ).toBe('ath')
    expect(await reason(verifyDpopProof(await proof({ ath }), expected))).toBe('ath')
  })

  test('refusals, each named', async () => {
    const { privateKey: other } = await generateKeyPair('ES256')
    const forged = await new SignJWT({ jti: 'j', htm: 'GET', htu: URL_, iat: nowS })
      .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk })
      .sign(other)
    const table: [string, Promise<string>, string | RegExp][] = [
      ['wrong htm', proof({ htm: 'POST' }), 'htm'],
      ['a jti no store can hold', proof({ jti: 'a\ud800b' }), 'jti'],
      ['wrong htu', proof({ htu: 'https://api.test/elsewhere' }), 'htu'],
      ['htu not a URL', proof({ htu: 'nope' }), 'htu'],
      ['too old', proof({ iat: nowS - 66 }), 'iat'],
      ['from the future', proof({ iat: nowS + 6 }), 'iat'],
      ['nonce expected', proof(), 'nonce'],
      ['private key in the header', proof({}, { jwk: { ...jwk, d: 'AAAA' } }), 'private_key'],
      ['another typ', proof({}, { typ: 'JWT' }), /JWT_CLAIM_VALIDATION_FAILED|ERR_/],
      ['signed by another key', Promise.resolve(forged), /SIGNATURE/],
      ['two proofs', proof().then((p) => `${p},${p}`), 'malformed'],
      ['not a JWT', Promise.resolve('nope'), /ERR_|malformed/],
    ]
    for (const [name, p, want] of table) {
      const options =
        name === 'nonce expected'
          ? { ...expected, nonceHolds: async (n: unknown) => n === 'n-1' }
          : expected
      const got = await reason(verifyDpopProof(await p, options))
      expect({ name, got: typeof want === 'string' ? got : want.test(String(got)) }).toEqual({
        name,
        got: typeof want === 'string' ? want : true,
      })
    }
  })
})

describe('verifyClientAssertion (RFC 7523 §3)', () => {
  const options = {
    clientId: 'agent-1',
    audiences: ['https://api.test', 'https://api.test/api/v1/agent/token'],
    now: NOW,
    toleranceSeconds: 5,
    maxLifetimeSeconds: 300,
  }
  const assertion = (claims: JWTPayload = {}, alg = 'ES256') =>
    new SignJWT({
      iss: 'agent-1',
      sub: 'agent-1',
      aud: 'https://api.test',
      jti: 'j-1',
      iat: nowS,
      exp: nowS + 60,
      ...claims,
    })
      .setProtectedHeader({ alg })
      .sign(key.privateKey)

  test('a good assertion gives its jti and exp; either audience will do', async () => {
    expect(await verifyClientAssertion(await assertion(), jwk, options)).toEqual({
      jti: 'j-1',
      exp: nowS + 60,
    })
    await expect(
      verifyClientAssertion(await assertion({ aud: options.audiences[1] }), jwk, options),
    ).resolves.toBeDefined()
  })

  test('refusals', async () => {
    const table: [string, Promise<string>, string][] = [
      ['expired', assertion({ iat: nowS - 120, exp: nowS - 60 }), 'ERR_JWT_EXPIRED'],
      ['exp too far', assertion({ iat: undefined, exp: nowS + 306 }), 'lifetime'],
      ['iat to exp too long', assertion({ iat: nowS - 200, exp: nowS + 200 }), 'lifetime'],
      ['issued in the future', assertion({ iat: nowS + 3600, exp: nowS + 60 }), 'issued_in_future'],
      ['wrong aud', assertion({ aud: 'https://other.test' }), 'ERR_JWT_CLAIM_VALIDATION_FAILED'],
      ['wrong iss', assertion({ iss: 'agent-2' }), 'ERR_JWT_CLAIM_VALIDATION_FAILED'],
      ['wrong sub', assertion({ sub: 'agent-2' }), 'ERR_JWT_CLAIM_VALIDATION_FAILED'],
      ['no jti', assertion({ jti: undefined }), 'ERR_JWT_CLAIM_VALIDATION_FAILED'],
      ['a jti no store can hold', assertion({ jti: 'a\u0000b' }), 'claims'],
    ]
    for (const [name, a, want] of table) {
      expect({ name, got: await reason(verifyClientAssertion(await a, jwk, options)) }).toEqual({
        name,
        got: want,
      })
    }
    // A key registered for one algorithm is used with that one only.
    expect(
      await reason(verifyClientAssertion(await assertion(), { ...jwk, alg: 'ES384' }, options)),
    ).toBe('algorithm')
  })
})

describe('ReplayCache without Redis', () => {
  test('first use only, until it expires; full of live ids: it refuses to check', async () => {
    const cache = new ReplayCache({ maxEntries: 2 })
    expect(await cache.firstUse('dpop-proof', 'a', NOW + 1000, NOW)).toBe(true)
    expect(await cache.firstUse('dpop-proof', 'a', NOW + 1000, NOW)).toBe(false)
    // Kinds do not collide.
    expect(await cache.firstUse('client-assertion', 'a', NOW + 1000, NOW)).toBe(true)
    await expect(cache.firstUse('dpop-proof', 'b', NOW + 1000, NOW)).rejects.toBeInstanceOf(
      ReplayCacheFull,
    )
    // Once expired, an id is purged to make room (a proof that old is refused anyway).
    expect(await cache.firstUse('dpop-proof', 'b', NOW + 5000, NOW + 1000)).toBe(true)
  })

  test('50 uses of one id at once: exactly one wins', async () => {
    const cache = new ReplayCache({ maxEntries: 100 })
    const answers = await Promise.all(
      Array.from({ length: 50 }, () => cache.firstUse('dpop-proof', 'same', NOW + 1000, NOW)),
    )
    expect(answers.filter(Boolean)).toHaveLength(1)
  })
})
