// Retries, backoff, Retry-After, budgets and re-authentication, on fake time.
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest'
import {
  DEFAULT_RETRY_POLICY,
  type HttpRuntime,
  retryDelay,
  send,
} from '../../../src/client/http.ts'
import { AgentApiError } from '../../../src/client/index.ts'
import { flush, setup } from './fake-server.ts'

beforeEach(() => {
  vi.useFakeTimers()
  vi.setSystemTime(Date.parse('2026-01-01T00:00:00Z'))
})
afterEach(() => {
  vi.useRealTimers()
})

function settle<T>(promise: Promise<T>) {
  const state: { value?: T; error?: unknown; done: boolean } = { done: false }
  promise.then(
    (value) => Object.assign(state, { value, done: true }),
    (error: unknown) => Object.assign(state, { error, done: true }),
  )
  return state
}

describe('429 and 5xx', () => {
  test('429 with Retry-After: 2 waits at least 2 s, then retries', async () => {
    const { server, client } = setup({ random: () => 0 })
    await client.getAccessToken()
    server.fail('context', { status: 429, retryAfter: '2' })
    const call = settle(client.getUserContext('demo-user-1'))
    await flush()
    expect(server.count('context')).toBe(1)
    await vi.advanceTimersByTimeAsync(1_999)
    expect(server.count('context')).toBe(1)
    expect(call.done).toBe(false)
    await vi.advanceTimersByTimeAsync(1)
    await flush()
    expect(call.done).toBe(true)
    expect(call.error).toBeUndefined()
    const [first, second] = server.seen.filter((s) => s.route === 'context')
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(2_000)
  })

  test('Retry-After as an HTTP date is honoured too', async () => {
    const { server, client } = setup({ random: () => 0 })
    await client.getAccessToken()
    const at = new Date(Date.now() + 5_000).toUTCString()
    server.fail('context', { status: 503, retryAfter: at })
    const call = settle(client.getUserContext('demo-user-1'))
    await vi.advanceTimersByTimeAsync(4_999)
    expect(server.count('context')).toBe(1)
    await vi.advanceTimersByTimeAsync(1)
    await flush()
    expect(call.done).toBe(true)
    expect(server.count('context')).toBe(2)
  })

  test('503 and 500 are retried with jittered exponential backoff, bounded attempts', async () => {
    const { server, client } = setup() // jitter 0.5 of the ceiling
    await client.getAccessToken()
    server.fail('context', { status: 503 }, { status: 500 }, { status: 503 }, { status: 500 })
    const call = settle(client.getUserContext('demo-user-1'))
    await vi.advanceTimersByTimeAsync(60_000)
    expect(call.error).toBeInstanceOf(AgentApiError)
    expect(call.error).toMatchObject({ status: 500, code: 'status_500' })
    const times = server.seen.filter((s) => s.route === 'context').map((s) => s.at)
    expect(times).toHaveLength(DEFAULT_RETRY_POLICY.maxAttempts) // 4, not 5
    const gaps = times.slice(1).map((t, i) => t - times[i]!)
    expect(gaps).toEqual([250, 500, 1_000]) // half of 500, 1000, 2000 ms
  })

  test('the jitter spreads delays over [0, ceiling)', () => {
    const policy = DEFAULT_RETRY_POLICY
    expect(retryDelay(1, undefined, policy, () => 0)).toBe(0)
    expect(retryDelay(1, undefined, policy, () => 0.999)).toBe(499)
    expect(retryDelay(3, undefined, policy, () => 0.999)).toBe(1_998)
    expect(retryDelay(20, undefined, policy, () => 0.999)).toBe(9_990) // capped
    expect(retryDelay(1, 2_000, policy, () => 0.5)).toBe(2_250) // Retry-After is a floor
  })

  test('a Retry-After beyond the time budget is surfaced at once, with retryAfterMs', async () => {
    const { server, client } = setup()
    await client.getAccessToken()
    server.fail('context', { status: 503, retryAfter: '120' })
    const err = await client.getUserContext('demo-user-1').catch((e: unknown) => e)
    expect(err).toMatchObject({ status: 503, retryAfterMs: 120_000 })
    expect(server.count('context')).toBe(1)
  })

  test('the total time budget bounds the retries', async () => {
    const { server, client } = setup({
      random: () => 0.999,
      retry: { maxAttempts: 10, budgetMs: 5_000 },
    })
    await client.getAccessToken()
    server.fail('context', ...Array.from({ length: 10 }, () => ({ status: 502 })))
    const call = settle(client.getUserContext('demo-user-1'))
    await vi.advanceTimersByTimeAsync(60_000)
    expect(call.error).toMatchObject({ status: 502 })
    const times = server.seen.filter((s) => s.route === 'context').map((s) => s.at)
    // 499 + 999 + 1998 = 3496 ms; the next (3996 ms) would end past 5 s.
    expect(times).toHaveLength(4)
    expect(times.at(-1)! - times[0]!).toBeLessThanOrEqual(5_000)
  })

  test.each([
    [400, 'validation_failed'],
    [403, 'insufficient_scope'],
    [404, 'not_found'],
    [409, 'conflict'],
  ])('%i is not retried', async (status, code) => {
    const { server, client } = setup()
    await client.getAccessToken()
    server.fail('context', { status, body: { code } })
    const err = await client.getUserContext('demo-user-1').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(AgentApiError)
    expect(err).toMatchObject({ status, code, requestId: expect.stringMatching(/^req-/) })
    expect(server.count('context')).toBe(1)
  })

  test('network errors and timeouts are retried', async () => {
    const { server, client } = setup()
    await client.getAccessToken()
    server.fail('context', 'network', 'hang')
    const call = settle(client.getUserContext('demo-user-1'))
    await vi.advanceTimersByTimeAsync(250) // backoff after the network error
    expect(server.count('context')).toBe(2)
    await vi.advanceTimersByTimeAsync(DEFAULT_RETRY_POLICY.timeoutMs + 500)
    await flush()
    expect(call.done).toBe(true)
    expect(call.error).toBeUndefined()
    expect(server.count('context')).toBe(3)
  })

  test('network errors past the last attempt surface as AgentApiError status 0', async () => {
    const { server, client } = setup({ retry: { maxAttempts: 2 } })
    await client.getAccessToken()
    server.fail('context', 'network', 'network')
    const call = settle(client.getUserContext('demo-user-1'))
    await vi.advanceTimersByTimeAsync(1_000)
    expect(call.error).toMatchObject({ status: 0, code: 'network_error' })
  })

  test('aborting stops the retries and their waits', async () => {
    const { server, client } = setup()
    await client.getAccessToken()
    server.fail('context', { status: 503, retryAfter: '10' })
    const controller = new AbortController()
    const call = settle(client.getUserContext('demo-user-1', { signal: controller.signal }))
    await vi.advanceTimersByTimeAsync(1_000)
    controller.abort()
    await flush()
    expect(call.done).toBe(true)
    expect((call.error as Error).name).toBe('AbortError')
    await vi.advanceTimersByTimeAsync(20_000)
    expect(server.count('context')).toBe(1)
  })

  test('send() asks for a fresh request per attempt', async () => {
    let made = 0
    const statuses = [503, 200]
    const rt: HttpRuntime = {
      fetch: async () => new Response(null, { status: statuses.shift()! }),
      now: () => Date.now(),
      sleep: async () => {},
      random: () => 0,
    }
    const res = await send(
      rt,
      DEFAULT_RETRY_POLICY,
      () => {
        made++
        return new Request('https://api.test/x', { method: 'POST', body: 'once' })
      },
      { method: 'POST', path: '/x' },
    )
    expect(res.status).toBe(200)
    expect(made).toBe(2)
  })
})

describe('401 re-authentication', () => {
  test('a 401 invalidates the token, gets a new one and retries once', async () => {
    const { server, client } = setup()
    const first = await client.getAccessToken()
    server.revokeAccess(first)
    const result = await client.getUserContext('demo-user-1')
    expect(result.notModified).toBe(false)
    const auth = server.seen.filter((s) => s.route === 'context').map((s) => s.headers)
    expect(auth).toHaveLength(2)
    expect(auth[0]!.get('authorization')).toBe(`Bearer ${first}`)
    expect(auth[1]!.get('authorization')).not.toBe(`Bearer ${first}`)
    // The refresh token survives an access token's rejection: refresh grant first.
    expect(server.grants()).toEqual(['client_credentials', 'refresh_token'])
  })

  test('a second 401 surfaces as AgentApiError: no loop', async () => {
    const { server, client } = setup()
    await client.getAccessToken()
    server.fail('context', { status: 401, body: { code: 'invalid_token' } }, { status: 401 })
    const err = await client.getUserContext('demo-user-1').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(AgentApiError)
    expect(err).toMatchObject({ status: 401 })
    expect(server.count('context')).toBe(2)
    expect(server.tokenRequests).toHaveLength(2)
  })

  test('100 concurrent 401s share one re-authentication', async () => {
    const { server, client } = setup()
    const first = await client.getAccessToken()
    server.revokeAccess(first)
    await Promise.all(Array.from({ length: 100 }, () => client.getUserContext('demo-user-1')))
    expect(server.grants()).toEqual(['client_credentials', 'refresh_token'])
    expect(server.count('context')).toBe(200)
  })
})
