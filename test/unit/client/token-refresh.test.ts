// The token manager through the client, against the fake token endpoint, on fake time.
import fc from 'fast-check'
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest'
import { AgentApiError } from '../../../src/client/index.ts'
import { createTokenManager } from '../../../src/client/token-manager.ts'
import type { TokenResponse } from '../../../src/contract/index.ts'
import { flush, setup } from './fake-server.ts'

const T0 = Date.parse('2026-01-01T00:00:00Z')
const HOUR_S = 3600
const FIVE_MIN = 5 * 60_000

beforeEach(() => {
  vi.useFakeTimers()
  vi.setSystemTime(T0)
})
afterEach(() => {
  vi.useRealTimers()
})

/** Moves the clock without running timers: the token manager must not need any. */
function jump(ms: number) {
  vi.setSystemTime(Date.now() + ms)
}

describe('proactive refresh', () => {
  test('starts at expiry - 5 min (not before), with the refresh grant, and rotates', async () => {
    const { server, client } = setup()
    const first = await client.getAccessToken()
    expect(server.grants()).toEqual(['client_credentials'])

    jump(HOUR_S * 1000 - FIVE_MIN - 1)
    expect(await client.getAccessToken()).toBe(first)
    await flush()
    expect(server.tokenRequests).toHaveLength(1)

    jump(1) // exactly expiry - 5 min
    expect(await client.getAccessToken()).toBe(first) // the valid token, without waiting
    await flush()
    expect(server.grants()).toEqual(['client_credentials', 'refresh_token'])
    const second = await client.getAccessToken()
    expect(second).not.toBe(first)

    // The next window refreshes with the rotated (newest) refresh token.
    jump(HOUR_S * 1000 - FIVE_MIN)
    await client.getAccessToken()
    await flush()
    const refreshes = server.tokenRequests.filter((r) => r.grant === 'refresh_token')
    expect(refreshes).toHaveLength(2)
    expect(refreshes[0]!.refreshToken).not.toBe(refreshes[1]!.refreshToken)
    expect(server.isFamilyRevoked(refreshes[1]!.refreshToken!)).toBe(false)
    expect(await client.getAccessToken()).not.toBe(second)
  })

  test('honours a custom margin', async () => {
    const { server, client } = setup({ refreshMarginMs: 60_000 })
    await client.getAccessToken()
    jump(HOUR_S * 1000 - 60_000 - 1)
    await client.getAccessToken()
    await flush()
    expect(server.tokenRequests).toHaveLength(1)
    jump(1)
    await client.getAccessToken()
    await flush()
    expect(server.grants()).toEqual(['client_credentials', 'refresh_token'])
  })

  test('caps the margin at half the lifetime of a short-lived token', async () => {
    const { server, client } = setup({}, { accessTtlSeconds: 120 })
    await client.getAccessToken()
    await client.getAccessToken()
    await flush()
    expect(server.tokenRequests).toHaveLength(1) // not refreshing on every call
    jump(60_000 - 1)
    await client.getAccessToken()
    await flush()
    expect(server.tokenRequests).toHaveLength(1)
    jump(1)
    await client.getAccessToken()
    await flush()
    expect(server.grants()).toEqual(['client_credentials', 'refresh_token'])
  })

  test('sets no timer: nothing is pending between calls', async () => {
    const { client } = setup()
    await client.getUserContext('demo-user-1')
    jump(HOUR_S * 1000 - FIVE_MIN)
    await client.getUserContext('demo-user-1')
    await flush()
    expect(vi.getTimerCount()).toBe(0)
  })
})

describe('background refresh never blocks a caller holding a valid token', () => {
  test('the token endpoint is slow: calls in the window complete with the old token', async () => {
    const { server, client } = setup()
    const first = await client.getAccessToken()
    jump(HOUR_S * 1000 - 60_000) // one minute left
    const release = server.holdTokens()

    const calls = Array.from({ length: 100 }, () => client.getUserContext('demo-user-1'))
    let settled = 0
    for (const call of calls) void call.then(() => settled++)
    await flush()
    expect(settled).toBe(100)
    const contextAuth = server.seen.filter((s) => s.route === 'context')
    expect(contextAuth.every((s) => s.headers.get('authorization') === `Bearer ${first}`)).toBe(
      true,
    )
    expect(server.grants()).toEqual(['client_credentials', 'refresh_token']) // exactly one

    release()
    await flush()
    expect(await client.getAccessToken()).not.toBe(first)
    expect(server.tokenRequests).toHaveLength(2)
  })

  test('a hung refresh times out; the refresh token is dropped, never resent', async () => {
    const { server, client, backgroundErrors } = setup()
    const first = await client.getAccessToken()
    jump(HOUR_S * 1000 - FIVE_MIN)
    server.fail('token', 'hang')
    expect(await client.getAccessToken()).toBe(first)
    await flush()
    expect(server.grants()).toEqual(['client_credentials', 'refresh_token'])

    // Calls go on with the valid token while the refresh hangs.
    for (let i = 0; i < 5; i++) {
      await vi.advanceTimersByTimeAsync(2_000)
      expect(await client.getAccessToken()).toBe(first)
    }
    // The attempt's deadline (15 s) passes: its fate is unknown, so client credentials follow.
    await vi.advanceTimersByTimeAsync(6_000)
    expect(server.grants()).toEqual(['client_credentials', 'refresh_token', 'client_credentials'])
    expect(await client.getAccessToken()).not.toBe(first)
    expect(backgroundErrors).toEqual([])
  })

  test('a failed background refresh is reported, not thrown; callers keep the token', async () => {
    const { server, client, backgroundErrors } = setup({ retry: { maxAttempts: 1 } })
    const first = await client.getAccessToken()
    jump(HOUR_S * 1000 - FIVE_MIN)
    server.fail('token', { status: 503, retryAfter: '30' })
    expect(await client.getAccessToken()).toBe(first)
    await flush()
    expect(backgroundErrors).toHaveLength(1)
    expect(backgroundErrors[0]).toBeInstanceOf(AgentApiError)

    // Within the server's Retry-After no new attempt starts; after it, one does.
    jump(29_000)
    expect(await client.getAccessToken()).toBe(first)
    await flush()
    expect(server.tokenRequests).toHaveLength(2)
    jump(1_000)
    await client.getAccessToken()
    await flush()
    expect(server.grants()).toEqual(['client_credentials', 'refresh_token', 'refresh_token'])
    // 503 means nothing was processed: the same refresh token is still good and was reused.
    expect(server.tokenRequests[1]!.refreshToken).toBe(server.tokenRequests[2]!.refreshToken)
    expect(await client.getAccessToken()).not.toBe(first)
  })
})

describe('single flight', () => {
  test('100 concurrent calls without a token: exactly one token request', async () => {
    const { server, client } = setup()
    const results = await Promise.all(
      Array.from({ length: 100 }, () => client.getUserContext('demo-user-1')),
    )
    expect(results).toHaveLength(100)
    expect(server.tokenRequests).toHaveLength(1)
    expect(server.count('context')).toBe(100)
  })

  test('100 concurrent calls in the refresh window: exactly one refresh', async () => {
    const { server, client } = setup()
    await client.getAccessToken()
    jump(HOUR_S * 1000 - 120_000)
    await Promise.all(Array.from({ length: 100 }, () => client.getUserContext('demo-user-1')))
    await flush()
    expect(server.grants()).toEqual(['client_credentials', 'refresh_token'])
  })

  test('100 concurrent calls with an expired token wait for one refresh', async () => {
    const { server, client } = setup()
    const first = await client.getAccessToken()
    jump(HOUR_S * 1000 + 1)
    const tokens = await Promise.all(Array.from({ length: 100 }, () => client.getAccessToken()))
    expect(new Set(tokens).size).toBe(1)
    expect(tokens[0]).not.toBe(first)
    expect(server.grants()).toEqual(['client_credentials', 'refresh_token'])
  })

  test('property: no refresh token is ever sent twice, whatever the schedule', async () => {
    const step = fc.record({
      advanceMs: fc.integer({ min: 0, max: 2 * HOUR_S * 1000 }),
      calls: fc.integer({ min: 1, max: 20 }),
      reject: fc.boolean(), // the API rejects the token (revoked server-side) before the calls
    })
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 12 }), async (steps) => {
        vi.setSystemTime(T0)
        const { server, client } = setup({}, { accessTtlSeconds: 900 })
        for (const s of steps) {
          jump(s.advanceMs)
          if (s.reject) {
            const held = server.tokenRequests.length ? await client.getAccessToken() : undefined
            if (held) server.revokeAccess(held)
          }
          await Promise.all(
            Array.from({ length: s.calls }, () => client.getUserContext('demo-user-1')),
          )
          await flush()
        }
        const sent = server.tokenRequests.flatMap((r) => (r.refreshToken ? [r.refreshToken] : []))
        expect(new Set(sent).size).toBe(sent.length)
        expect(sent.some((rt) => server.isFamilyRevoked(rt))).toBe(false)
      }),
      { numRuns: 60 },
    )
  })
})

describe('expiry and fallback', () => {
  test('an expired token blocks callers until the new one arrives', async () => {
    const { server, client } = setup()
    const first = await client.getAccessToken()
    jump(HOUR_S * 1000)
    const release = server.holdTokens()
    let got: string | undefined
    const pending = client.getAccessToken().then((t) => {
      got = t
    })
    await flush()
    expect(got).toBeUndefined()
    release()
    await pending
    expect(got).toBeDefined()
    expect(got).not.toBe(first)
    expect(server.grants()).toEqual(['client_credentials', 'refresh_token'])
  })

  test.each([
    [400, 'invalid_grant'],
    [401, 'invalid_client'],
  ])(
    'the refresh grant failing with %i falls back to client credentials',
    async (status, error) => {
      const { server, client } = setup()
      const first = await client.getAccessToken()
      jump(HOUR_S * 1000)
      server.fail('token', { status, body: { code: error, error } })
      const next = await client.getAccessToken()
      expect(next).not.toBe(first)
      expect(server.grants()).toEqual(['client_credentials', 'refresh_token', 'client_credentials'])
    },
  )

  test('a refresh lost to the network is not retried; client credentials take over', async () => {
    const { server, client } = setup()
    await client.getAccessToken()
    jump(HOUR_S * 1000)
    server.fail('token', 'network')
    await client.getAccessToken()
    expect(server.grants()).toEqual(['client_credentials', 'refresh_token', 'client_credentials'])
  })

  test('client credentials are retried on 429 with Retry-After, not on 401', async () => {
    const { server, client } = setup({ random: () => 0 })
    server.fail('token', { status: 429, retryAfter: '3', body: { error: 'slow_down' } })
    const pending = client.getAccessToken()
    await vi.advanceTimersByTimeAsync(2_999)
    expect(server.tokenRequests).toHaveLength(1)
    await vi.advanceTimersByTimeAsync(1)
    await pending
    expect(server.tokenRequests).toHaveLength(2)

    const wrong = setup({ agentSecret: 'a-wrong-secret-of-some-length' })
    const err = await wrong.client.getAccessToken().catch((e: unknown) => e)
    expect(err).toBeInstanceOf(AgentApiError)
    expect(err).toMatchObject({ status: 401, code: 'invalid_client' })
    expect(wrong.server.tokenRequests).toHaveLength(1)
  })

  test('the refresh token is not used past its own expiry', async () => {
    const { server, client } = setup({}, { accessTtlSeconds: 900, refreshTtlSeconds: 600 })
    await client.getAccessToken()
    jump(900_000)
    await client.getAccessToken()
    expect(server.grants()).toEqual(['client_credentials', 'client_credentials'])
  })
})

describe('createTokenManager', () => {
  test('keeps the old refresh token when a response carries none (RFC 6749 §6)', async () => {
    let now = 0
    const grants: string[] = []
    const responses: TokenResponse[] = [
      tokenResponse('a1', 'r1'),
      { ...tokenResponse('a2', 'r1'), refresh_token: '' },
      tokenResponse('a3', 'r2'),
    ]
    const manager = createTokenManager({
      now: () => now,
      requestToken: async (grant) => {
        grants.push(grant.type === 'refresh_token' ? grant.refreshToken : grant.type)
        return responses.shift()!
      },
    })
    expect(await manager.getToken()).toBe('a1')
    now = 3_600_000
    expect(await manager.getToken()).toBe('a2')
    now *= 2
    expect(await manager.getToken()).toBe('a3')
    expect(grants).toEqual(['client_credentials', 'r1', 'r1'])
  })

  test('invalidate() ignores a token that has been replaced already', async () => {
    let n = 0
    const manager = createTokenManager({
      now: () => 0,
      requestToken: async () => tokenResponse(`a${++n}`, `r${n}`),
    })
    const a1 = await manager.getToken()
    manager.invalidate(a1)
    const a2 = await manager.getToken()
    manager.invalidate(a1) // a late 401 for the old token
    expect(await manager.getToken()).toBe(a2)
    expect(n).toBe(2)
  })
})

function tokenResponse(access: string, refresh: string): TokenResponse {
  return {
    access_token: access,
    token_type: 'Bearer',
    expires_in: 3600,
    expires_at: '',
    refresh_token: refresh,
    refresh_expires_in: 86_400,
    scope: 'context:read progress:write',
    environment: 'development',
  }
}
