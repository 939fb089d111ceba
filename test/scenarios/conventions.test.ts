// Conventions every route shares (CONTRACT.md "Conventions"), in both runtimes.
import { describe, expect, test } from 'vitest'
import { scenario } from '../support/scenario.ts'

const s = await scenario()

describe(`conventions (${s.runtime})`, () => {
  test('echoes a safe X-Request-Id and replaces an unsafe one', async () => {
    const echoed = await s.fetch('/health', { headers: { 'X-Request-Id': 'abc-123_DEF=' } })
    expect(echoed.headers.get('x-request-id')).toBe('abc-123_DEF=')

    for (const bad of ['has space', 'x'.repeat(129), 'semi;colon', '']) {
      const res = await s.fetch('/health', { headers: { 'X-Request-Id': bad } })
      const id = res.headers.get('x-request-id')
      expect(id).toMatch(/^[\w=-]{1,128}$/)
      expect(id).not.toBe(bad)
    }
  })

  test('every response carries Server-Timing with total and the security headers', async () => {
    const res = await s.fetch('/health')
    expect(res.headers.get('server-timing')).toMatch(/^total;dur=\d+(\.\d+)?/)
    expect(res.headers.get('x-content-type-options')).toBe('nosniff')
    expect(res.headers.get('x-frame-options')).toBe('DENY')
    expect(res.headers.get('referrer-policy')).toBe('no-referrer')
    expect(res.headers.get('strict-transport-security')).toContain('max-age=')
  })

  test('an unknown route is a problem+json 404 with the request id', async () => {
    const res = await s.fetch('/nope', { headers: { 'X-Request-Id': 'req-404' } })
    expect(res.status).toBe(404)
    expect(res.headers.get('content-type')).toBe('application/problem+json')
    expect(res.headers.get('server-timing')).toMatch(/total/)
    const body = await res.json()
    expect(body).toMatchObject({
      type: '/problems/not_found',
      title: 'Not Found',
      status: 404,
      code: 'not_found',
      request_id: 'req-404',
    })
  })

  test('a body over 64 KiB is a 413 problem', async () => {
    const big = JSON.stringify({ pad: 'x'.repeat(64 * 1024) })
    const res = await s.fetch('/health', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: big,
    })
    expect(res.status).toBe(413)
    expect(res.headers.get('content-type')).toBe('application/problem+json')
    expect((await res.json()).code).toBe('body_too_large')
  })
})
