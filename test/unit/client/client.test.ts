// The typed methods against the fake server: wire format, idempotency, errors, logout.
import { readdirSync, readFileSync } from 'node:fs'
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest'
import { AgentApiError, createAgentClient } from '../../../src/client/index.ts'
import { AGENT_ID, AGENT_SECRET, BASE_URL, setup, update } from './fake-server.ts'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

beforeEach(() => {
  vi.useFakeTimers()
  vi.setSystemTime(Date.parse('2026-01-01T00:00:00Z'))
})
afterEach(() => {
  vi.useRealTimers()
})

describe('token requests', () => {
  test('RFC 6749 form encoding with HTTP Basic over the form-encoded credentials', async () => {
    const { server, client } = setup({ scope: 'context:read' })
    await client.getAccessToken()
    const [request] = server.tokenRequests
    expect(request).toMatchObject({
      grant: 'client_credentials',
      scope: 'context:read',
      contentType: 'application/x-www-form-urlencoded',
    })
    const decoded = atob(request!.authorization!.replace(/^Basic /, ''))
    expect(decoded).toBe(`demo+agent%3A1:${AGENT_SECRET}`)
    expect(server.bodies('token')[0]).not.toContain(AGENT_SECRET) // never in the body
  })
})

describe('getUserContext', () => {
  test('encodes the id and surfaces ETag, X-Cache and the body', async () => {
    const { server, client } = setup()
    const result = await client.getUserContext('a/b c?')
    expect(server.seen.at(-1)!.path).toBe('/api/v1/agent/users/a%2Fb%20c%3F/context')
    expect(result).toMatchObject({
      notModified: false,
      etag: server.contextEtag,
      cache: 'MISS',
      degradedReason: undefined,
      requestId: expect.stringMatching(/^req-/),
      data: { user: { id: 'a/b c?' }, source: 'database' },
    })
  })

  test('ifNoneMatch turns a 304 into { notModified: true }', async () => {
    const { server, client } = setup()
    const result = await client.getUserContext('demo-user-1', { ifNoneMatch: server.contextEtag })
    expect(server.seen.at(-1)!.headers.get('if-none-match')).toBe(server.contextEtag)
    expect(result).toMatchObject({ notModified: true, etag: server.contextEtag })
    const changed = await client.getUserContext('demo-user-1', { ifNoneMatch: '"old"' })
    expect(changed.notModified).toBe(false)
  })

  test('noCache sends Cache-Control: no-cache', async () => {
    const { server, client } = setup()
    const result = await client.getUserContext('demo-user-1', { noCache: true })
    expect(server.seen.at(-1)!.headers.get('cache-control')).toBe('no-cache')
    expect(result).toMatchObject({ cache: 'BYPASS' })
    await client.getUserContext('demo-user-1')
    expect(server.seen.at(-1)!.headers.get('cache-control')).toBeNull()
  })

  test('a base URL with a path prefix and a trailing slash', async () => {
    const { server } = setup()
    const client = createAgentClient({
      baseUrl: `${BASE_URL}/prefix/`,
      agentId: AGENT_ID,
      agentSecret: AGENT_SECRET,
      fetch: (req, init) => {
        const url = new URL(req.url)
        expect(url.pathname.startsWith('/prefix/api/v1/agent/')).toBe(true)
        url.pathname = url.pathname.replace('/prefix', '')
        return server.fetch(new Request(url, req), init)
      },
    })
    await client.getUserContext('demo-user-1')
    expect(server.count('context')).toBe(1)
  })
})

describe('reportProgress', () => {
  test('one update: a key generated once, in body and header, identical across retries', async () => {
    const { server, client } = setup()
    await client.getAccessToken()
    server.fail('progress', { status: 503, retryAfter: '1' }, 'network', { status: 500 })
    const pending = client.reportProgress(update('t1'))
    await vi.advanceTimersByTimeAsync(10_000)
    const receipt = await pending
    const seen = server.seen.filter((s) => s.route === 'progress')
    expect(seen).toHaveLength(4)
    const keys = seen.map(
      (s) => (JSON.parse(s.body) as { idempotency_key: string }).idempotency_key,
    )
    expect(new Set(keys).size).toBe(1)
    expect(keys[0]).toMatch(UUID)
    expect(seen.map((s) => s.headers.get('idempotency-key'))).toEqual(keys)
    expect(new Set(seen.map((s) => s.body)).size).toBe(1) // the very same bytes
    expect(receipt).toMatchObject({
      accepted: 1,
      duplicates: 0,
      idempotencyKeys: [keys[0]],
      batches: [{ status: 'queued', location: expect.stringMatching(/\/batches\/batch-/) }],
    })
  })

  test('503 outcome_unknown is retried by itself with the same keys; exhausted, the keys are on the error', async () => {
    const unknown = {
      status: 503,
      retryAfter: '1',
      body: {
        type: '/problems/outcome_unknown',
        title: 'Service Unavailable',
        status: 503,
        code: 'outcome_unknown',
        detail: 'A store timed out and may have taken the update(s)',
        request_id: 'r1',
      },
    }
    const { server, client } = setup()
    await client.getAccessToken()
    server.fail('progress', unknown, unknown)
    const pending = client.reportProgress(update('t1'))
    await vi.advanceTimersByTimeAsync(10_000)
    await pending
    const bodies = server.bodies('progress')
    expect(bodies).toHaveLength(3)
    expect(new Set(bodies).size).toBe(1)

    // Still unknown after every attempt: the error says so and carries the keys to retry with.
    server.fail('progress', unknown, unknown, unknown, unknown)
    const failing = client.reportProgress([update('t2'), update('t3')]).catch((e: unknown) => e)
    await vi.advanceTimersByTimeAsync(60_000)
    const error = (await failing) as AgentApiError
    expect(error).toBeInstanceOf(AgentApiError)
    expect(error.code).toBe('outcome_unknown')
    const sent = JSON.parse(server.bodies('progress').at(-1)!) as {
      updates: { idempotency_key: string }[]
    }
    expect(error.idempotencyKeys).toEqual(sent.updates.map((u) => u.idempotency_key))
  })

  test('a caller-provided key is kept and the input is not mutated', async () => {
    const { server, client } = setup()
    const mine = update('t1', { idempotency_key: 'my-key-1' })
    const bare = update('t2')
    await client.reportProgress(mine)
    await client.reportProgress([bare, mine])
    const [single, batch] = server.bodies('progress').map((b) => JSON.parse(b))
    expect(single.idempotency_key).toBe('my-key-1')
    expect(server.seen.find((s) => s.route === 'progress')!.headers.get('idempotency-key')).toBe(
      'my-key-1',
    )
    expect(batch.updates[1].idempotency_key).toBe('my-key-1')
    expect(batch.updates[0].idempotency_key).toMatch(UUID)
    expect(bare).not.toHaveProperty('idempotency_key')
  })

  test('a 401 re-auth resends the same keys', async () => {
    const { server, client } = setup()
    const first = await client.getAccessToken()
    server.revokeAccess(first)
    await client.reportProgress([update('t1'), update('t2')])
    const [a, b] = server.bodies('progress')
    expect(a).toBe(b)
  })

  test('a list is sent as { updates } in requests of at most 100, in order', async () => {
    const { server, client } = setup()
    const updates = Array.from({ length: 250 }, (_, i) => update(`t${i}`))
    const receipt = await client.reportProgress(updates)
    const bodies = server.bodies('progress').map((b) => JSON.parse(b) as { updates: unknown[] })
    expect(bodies.map((b) => b.updates.length)).toEqual([100, 100, 50])
    const sent = bodies.flatMap((b) => b.updates) as { task_id: string; idempotency_key: string }[]
    expect(sent.map((u) => u.task_id)).toEqual(updates.map((u) => u.task_id))
    expect(new Set(sent.map((u) => u.idempotency_key)).size).toBe(250)
    expect(server.seen.find((s) => s.route === 'progress')!.headers.get('idempotency-key')).toBe(
      null,
    )
    expect(receipt.accepted).toBe(250)
    expect(receipt.batches).toHaveLength(3)
    expect(receipt.idempotencyKeys).toEqual(sent.map((u) => u.idempotency_key))

    // Sending the same keys again (a caller retrying the whole call) counts as duplicates.
    const again = await client.reportProgress(
      sent.map((u) => ({ ...update(u.task_id), idempotency_key: u.idempotency_key })),
    )
    expect(again).toMatchObject({ accepted: 0, duplicates: 250 })
  })

  test('an empty list is refused without a request', async () => {
    const { server, client } = setup()
    await expect(client.reportProgress([])).rejects.toThrow(RangeError)
    expect(server.seen).toHaveLength(0)
  })
})

describe('other routes', () => {
  test('getBatch', async () => {
    const { server, client } = setup()
    const status = await client.getBatch('batch/1')
    expect(server.seen.at(-1)!.path).toBe('/api/v1/agent/progress/batches/batch%2F1')
    expect(status).toMatchObject({ batch_id: 'batch/1', status: 'queued' })
  })

  test('reportHealth with and without a heartbeat', async () => {
    const { server, client } = setup()
    const bare = await client.reportHealth()
    expect(bare.status).toBe('healthy')
    let seen = server.seen.at(-1)!
    expect(seen).toMatchObject({ method: 'POST', body: '' })
    expect(seen.headers.get('content-type')).toBeNull()
    await client.reportHealth({ status: 'ok', version: '1.2.3' })
    seen = server.seen.at(-1)!
    expect(JSON.parse(seen.body)).toEqual({ status: 'ok', version: '1.2.3' })
    expect(seen.headers.get('content-type')).toBe('application/json')
  })

  test('checkHealth: public, no token, one attempt; a 503 readiness body is a result', async () => {
    const { server, client } = setup()
    expect(await client.checkHealth()).toMatchObject({ status: 'pass' })
    expect(server.seen.at(-1)!.headers.get('authorization')).toBeNull()
    expect(server.tokenRequests).toHaveLength(0)
    server.readyFailing = true
    expect(await client.checkHealth({ ready: true })).toMatchObject({ status: 'fail' })
    expect(server.seen.at(-1)!.path).toBe('/health/ready')
    expect(server.count('public')).toBe(2)
    // A 503 problem (an outage, not a health body) is an error, and a probe does not retry it.
    server.fail('public', { status: 503, retryAfter: '5', body: { code: 'unavailable' } })
    await expect(client.checkHealth()).rejects.toMatchObject({ status: 503, retryAfterMs: 5_000 })
    expect(server.count('public')).toBe(3)
  })
})

describe('errors never carry the secret or a token', () => {
  function leaks(err: unknown, values: string[]) {
    const e = err as Error
    const text = [e.message, e.stack ?? '', JSON.stringify(err), String(err)].join('\n')
    return values.filter((v) => text.includes(v))
  }

  test('a refused client', async () => {
    const { client } = setup({ agentSecret: 'wrong-secret-that-is-long-enough' })
    const err = await client.getUserContext('demo-user-1').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(AgentApiError)
    expect(err).toMatchObject({ status: 401, code: 'invalid_client' })
    expect(leaks(err, ['wrong-secret-that-is-long-enough', 'Basic '])).toEqual([])
  })

  test('a server that echoes credentials and tokens is scrubbed', async () => {
    const { server, client } = setup()
    const token = await client.getAccessToken()
    const refreshToken = `rt-1-${'r'.repeat(24)}`
    const detail = `bad: ${AGENT_SECRET} ${token} Bearer ${token}`
    server.fail('context', {
      status: 400,
      body: { code: 'validation_failed', detail, echo: { nested: [AGENT_SECRET] } },
    })
    const err = await client.getUserContext('demo-user-1').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(AgentApiError)
    expect((err as AgentApiError).message).toContain('validation_failed')
    expect(leaks(err, [AGENT_SECRET, token])).toEqual([])

    jumpPastExpiry()
    server.fail('token', {
      status: 400,
      body: { code: 'invalid_grant', error: 'invalid_grant', error_description: refreshToken },
    })
    server.fail('token', { status: 401, body: { error: 'invalid_client', detail: AGENT_SECRET } })
    const refused = await client.getAccessToken().catch((e: unknown) => e)
    expect(refused).toMatchObject({ status: 401, code: 'invalid_client' })
    expect(leaks(refused, [AGENT_SECRET, refreshToken, token])).toEqual([])
  })

  test('a network error from a custom fetch that mentions the secret', async () => {
    const client = createAgentClient({
      baseUrl: BASE_URL,
      agentId: AGENT_ID,
      agentSecret: AGENT_SECRET,
      retry: { maxAttempts: 1 },
      fetch: async (req) => {
        throw new TypeError(`cannot send ${req.headers.get('authorization')} / ${AGENT_SECRET}`)
      },
    })
    const err = await client.getAccessToken().catch((e: unknown) => e)
    expect(err).toMatchObject({ status: 0, code: 'network_error' })
    const basic = `Basic ${btoa(`demo+agent%3A1:${AGENT_SECRET}`)}`
    expect(leaks(err, [AGENT_SECRET, basic.slice(6)])).toEqual([])
  })
})

describe('logout', () => {
  test('revokes the refresh token and the access token by jti, then forgets them', async () => {
    const { server, client } = setup()
    const token = await client.getAccessToken()
    const refreshToken = `rt-1-${'r'.repeat(24)}`
    await client.logout()
    expect(server.revocations).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ token: refreshToken, hint: 'refresh_token' }),
        expect.objectContaining({ token: server.jtiOf(token), hint: 'access_token' }),
      ]),
    )
    expect(server.revocations).toHaveLength(2)
    expect(server.revocations.every((r) => r.authorization?.startsWith('Basic '))).toBe(true)

    // Forgotten: the next call starts over with client credentials, not the revoked refresh.
    const next = await client.getAccessToken()
    expect(next).not.toBe(token)
    expect(server.grants()).toEqual(['client_credentials', 'client_credentials'])
  })

  test('waits for a refresh in flight and revokes the newest tokens', async () => {
    const { server, client } = setup()
    await client.getAccessToken()
    jumpPastExpiry()
    const release = server.holdTokens()
    const pending = client.getAccessToken()
    const done = client.revoke()
    release()
    const newest = await pending
    await done
    expect(server.revocations.map((r) => r.token)).toEqual(
      expect.arrayContaining([server.jtiOf(newest), `rt-2-${'r'.repeat(24)}`]),
    )
  })

  test('with nothing held it sends nothing', async () => {
    const { server, client } = setup()
    await client.logout()
    expect(server.seen).toHaveLength(0)
  })
})

test('the SDK uses Web-standard APIs only and imports no server code at runtime', () => {
  const dir = new URL('../../../src/client/', import.meta.url)
  for (const file of readdirSync(dir)) {
    const source = readFileSync(new URL(file, dir), 'utf8').replace(
      /^\s*\/\/.*$|\/\*[\s\S]*?\*\//gm,
      '',
    )
    expect(source, file).not.toMatch(/from 'node:|\bprocess\.|\bBuffer\b|require\(/)
    expect(source, file).not.toMatch(/setInterval/)
    // Only type imports may leave src/client: they are erased, so no zod or server code ships.
    for (const [statement, from] of source.matchAll(/^(?:import|export)[\s\S]*?from '([^']+)'/gm)) {
      if (!from!.startsWith('./')) expect(statement, file).toMatch(/^(import|export) type /)
    }
  }
})

function jumpPastExpiry() {
  vi.setSystemTime(Date.now() + 3_600_000)
}

describe('discovery (RFC 8414)', () => {
  test('the token endpoint comes from the metadata, read once', async () => {
    const { server, client: agent } = setup()
    server.tokenPath = '/oauth/token'
    server.metadata = { ...server.metadata, token_endpoint: `${BASE_URL}/oauth/token` }
    await agent.getUserContext('u1')
    await agent.getAccessToken()
    expect(server.seen.filter((s) => s.route === 'token').map((s) => s.path)).toEqual([
      '/oauth/token',
    ])
    expect(server.count('discovery')).toBe(1)
  })

  test('without metadata (404) the contract’s paths are used', async () => {
    const { server, client: agent } = setup()
    server.metadata = undefined
    await agent.getUserContext('u1')
    expect(server.seen.find((s) => s.route === 'token')?.path).toBe('/api/v1/agent/token')
  })

  test('metadata naming another issuer or origin is refused: no credentials go there', async () => {
    for (const metadata of [
      { issuer: 'https://evil.test', token_endpoint: 'https://evil.test/token' },
      { issuer: BASE_URL, token_endpoint: 'https://evil.test/token' },
    ]) {
      const { server, client: agent } = setup()
      server.metadata = metadata
      const error = await agent.getUserContext('u1').catch((e: unknown) => e)
      expect(error).toMatchObject({ code: 'discovery_mismatch' })
      expect(server.count('token')).toBe(0)
    }
  })
})
