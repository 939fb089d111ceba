import fc from 'fast-check'
import { expect, test } from 'vitest'
import {
  base64,
  base64UrlDecode,
  basicAuthorization,
  formEncode,
  jwtId,
} from '../../../src/client/encoding.ts'
import { parseRetryAfter, scrub } from '../../../src/client/errors.ts'

test('base64 agrees with Node for any bytes, and base64url decoding inverts it', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      expect(base64(bytes)).toBe(Buffer.from(bytes).toString('base64'))
      const url = Buffer.from(bytes).toString('base64url')
      expect(base64UrlDecode(url)).toEqual(bytes)
      expect(base64UrlDecode(base64(bytes))).toEqual(bytes)
    }),
  )
})

test('base64url decoding rejects what is not base64', () => {
  expect(base64UrlDecode('a$b')).toBeUndefined()
  expect(base64UrlDecode('abcde')).toBeUndefined()
})

test('HTTP Basic over form-encoded credentials (RFC 6749 §2.3.1), any Unicode', () => {
  fc.assert(
    fc.property(
      fc.string({ unit: 'grapheme', minLength: 1 }),
      fc.string({ unit: 'grapheme', minLength: 1 }),
      (id, secret) => {
        const header = basicAuthorization(id, secret)
        const decoded = Buffer.from(header.replace(/^Basic /, ''), 'base64').toString('utf8')
        const [encodedId, encodedSecret, ...rest] = decoded.split(':')
        expect(rest).toEqual([]) // a ':' inside either part is encoded
        const formDecode = (s: string) => new URLSearchParams(`x=${s}`).get('x')
        expect(formDecode(encodedId!)).toBe(id)
        expect(formDecode(encodedSecret!)).toBe(secret)
      },
    ),
  )
  expect(formEncode('a b:c+d/é')).toBe('a+b%3Ac%2Bd%2F%C3%A9')
})

test('jwtId reads the jti without verifying, and tolerates non-JWTs', () => {
  const part = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url')
  expect(jwtId(`${part({ alg: 'HS256' })}.${part({ jti: 'j-1', sub: 'a' })}.sig`)).toBe('j-1')
  expect(jwtId(`${part({})}.${part({ sub: 'a' })}.sig`)).toBeUndefined()
  expect(jwtId(`${part({})}.${part({ jti: 7 })}.sig`)).toBeUndefined()
  expect(jwtId('opaque-token')).toBeUndefined()
  expect(jwtId('a.%%%.c')).toBeUndefined()
  expect(jwtId(`a.${Buffer.from('not json').toString('base64url')}.c`)).toBeUndefined()
})

test('Retry-After: seconds or an HTTP date', () => {
  const now = Date.parse('2026-01-01T00:00:00Z')
  expect(parseRetryAfter('2', now)).toBe(2_000)
  expect(parseRetryAfter(' 0 ', now)).toBe(0)
  expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:30 GMT', now)).toBe(30_000)
  expect(parseRetryAfter('Wed, 31 Dec 2025 23:00:00 GMT', now)).toBe(0)
  expect(parseRetryAfter('soon', now)).toBeUndefined()
  expect(parseRetryAfter('-1', now)).toBeUndefined()
  expect(parseRetryAfter(null, now)).toBeUndefined()
})

test('scrub removes given values and anything JWT-shaped', () => {
  const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl'
  expect(scrub(`x ${jwt} y s3cret-value-123 z`, ['s3cret-value-123'])).toBe(
    'x [redacted] y [redacted] z',
  )
})
