// Conventions every route shares (CONTRACT.md "Conventions"), in both runtimes.
import { describe, expect, test } from 'vitest'
import { bearer, getToken, jsonPost } from '../support/agents.ts'
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

  test('a problem answer carries the headers every answer does, and its own', async () => {
    const auth = bearer((await getToken(s)).access_token)
    const res = await s.fetch(`/api/v1/agent/users/${'x'.repeat(129)}/context`, {
      headers: { ...auth, 'X-Request-Id': 'req-400' },
    })
    expect(res.status).toBe(400)
    expect(res.headers.get('content-type')).toBe('application/problem+json')
    expect(res.headers.get('cache-control')).toBe('no-store')
    expect(res.headers.get('x-request-id')).toBe('req-400')
    expect(res.headers.get('x-content-type-options')).toBe('nosniff')
    expect(res.headers.get('strict-transport-security')).toContain('max-age=')
    expect(res.headers.get('ratelimit-limit')).toMatch(/^\d+$/)
    expect(res.headers.get('server-timing')).toMatch(/total/)
  })

  test('120 requests at once: each answer carries its own request id, headers and body', async () => {
    // The headers every answer carries are prepared per request (src/http/headers.ts) and the
    // hot routes build their answer in one go: nothing may leak from one request to another.
    const auth = bearer((await getToken(s)).access_token)
    const ask = (i: number) => {
      const id = `burst-${i}`
      const kind = i % 4
      if (kind === 0 || kind === 1) {
        const user = kind === 0 ? 'demo-user-1' : 'demo-user-2'
        const res = s.fetch(`/api/v1/agent/users/${user}/context`, {
          headers: { ...auth, 'X-Request-Id': id },
        })
        return { id, kind, user, res }
      }
      if (kind === 2) {
        const update = {
          user_id: 'demo-user-1',
          task_id: `burst-${i}`,
          status: 'in_progress',
          progress: i % 101,
          occurred_at: new Date(Date.now() - 1000).toISOString(),
          idempotency_key: `burst-${crypto.randomUUID()}`,
        }
        const res = s.fetch(
          '/api/v1/agent/progress',
          jsonPost(update, { ...auth, 'X-Request-Id': id }),
        )
        return { id, kind, user: '', res }
      }
      const res = s.fetch(`/api/v1/agent/users/nobody-${i}/context`, {
        headers: { ...auth, 'X-Request-Id': id },
      })
      return { id, kind, user: '', res }
    }
    const asked = Array.from({ length: 120 }, (_, i) => ask(i))
    const answers = await Promise.all(asked.map(async (a) => ({ ...a, res: await a.res })))
    const batches = new Set<string>()
    for (const { id, kind, user, res } of answers) {
      expect(res.headers.get('x-request-id')).toBe(id)
      expect(res.headers.get('x-content-type-options')).toBe('nosniff')
      expect(res.headers.get('server-timing')).toMatch(/^total;dur=/)
      expect(res.headers.get('ratelimit-limit')).toMatch(/^\d+$/)
      const body = await res.json()
      if (kind === 0 || kind === 1) {
        expect(res.status).toBe(200)
        expect(res.headers.get('cache-control')).toMatch(/^private, (max-age=\d+|no-store)$/)
        expect(body.user.id).toBe(user)
      } else if (kind === 2) {
        expect(res.status).toBe(202)
        expect(res.headers.get('cache-control')).toBe('no-store')
        expect(res.headers.get('location')).toBe(`/api/v1/agent/progress/batches/${body.batch_id}`)
        batches.add(body.batch_id)
      } else {
        expect(res.status).toBe(404)
        expect(res.headers.get('cache-control')).toBe('no-store')
        expect(body.request_id).toBe(id)
      }
    }
    expect(batches.size).toBe(30)
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

  test('a 404 or 405 repeats nothing of the request (its path, query or method)', async () => {
    const marker = `m4rk3r${crypto.randomUUID().slice(0, 8)}`
    const answers = [
      await s.fetch(`/${marker}/x?${marker}=1`),
      await s.fetch(`/api/v1/${encodeURIComponent(`<${marker}>`)}`, { method: 'POST' }),
      // workerd takes only the standard methods: one the path does not serve stands in.
      await s.fetch('/health', { method: 'PATCH' }),
    ]
    expect(answers.map((r) => r.status)).toEqual([404, 404, 405])
    for (const res of answers) {
      const text = await res.text()
      expect(text.toLowerCase()).not.toContain(marker.toLowerCase())
      expect(text).not.toContain('PATCH')
      expect(JSON.parse(text).detail).toBeTruthy()
    }
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

describe(`nothing secret leaves the app (${s.runtime})`, () => {
  test('no secret, token or connection string in any log line or response', async () => {
    const verbose = s.withEnv({ LOG_LEVEL: 'debug' })
    const bodies: string[] = []
    for (const [path, init] of [
      ['/health', {}],
      ['/health/ready', {}],
      ['/nope', { headers: { Authorization: `Bearer ${s.env.DEV_JWT_SECRET}` } }],
      ['/health', { method: 'POST', body: 'x'.repeat(70_000) }],
    ] as const) {
      const res = await verbose.fetch(path, init)
      bodies.push(JSON.stringify([...res.headers]), await res.text())
    }
    await verbose.settle()
    const logs = s.logs()
    expect(logs.some((l) => l.includes('"msg":"request"'))).toBe(true)
    const everything = [...logs, ...bodies].join('\n')
    const secrets = [
      'DEV_AGENT_SECRET',
      'DEV_JWT_SECRET',
      'CRON_SECRET',
      'DATABASE_URL',
      'UPSTASH_REDIS_REST_TOKEN',
    ]
      .map((name) => verbose.env[name])
      .filter((v): v is string => v !== undefined)
    for (const secret of secrets) expect(everything).not.toContain(secret)
  })

  test('each request logs one structured line with id, method, route, status and duration', async () => {
    const before = s.logs().length
    const verbose = s.withEnv({ LOG_LEVEL: 'info' })
    await verbose.fetch('/health', { headers: { 'X-Request-Id': 'log-line-1' } })
    const lines = s
      .logs()
      .slice(before)
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.msg === 'request')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatchObject({
      level: 'info',
      request_id: 'log-line-1',
      method: 'GET',
      route: '/health',
      status: 200,
    })
    expect(typeof lines[0]?.duration_ms).toBe('number')
  })
})

describe(`methods (${s.runtime})`, () => {
  const PATHS: [string, string[]][] = [
    ['/health', ['GET', 'HEAD', 'OPTIONS']],
    ['/health/ready', ['GET', 'HEAD', 'OPTIONS']],
    ['/api/v1/agent/token', ['POST', 'OPTIONS']],
    ['/api/v1/agent/token/revoke', ['POST', 'OPTIONS']],
    ['/api/v1/agent/users/demo-user-1/context', ['GET', 'HEAD', 'OPTIONS']],
    ['/api/v1/agent/progress', ['POST', 'OPTIONS']],
    [`/api/v1/agent/progress/batches/${crypto.randomUUID()}`, ['GET', 'HEAD', 'OPTIONS']],
    ['/api/v1/agent/health', ['POST', 'OPTIONS']],
    ['/api/v1/internal/flush', ['GET', 'HEAD', 'POST', 'OPTIONS']],
    ['/openapi.json', ['GET', 'HEAD', 'OPTIONS']],
    ['/docs', ['GET', 'HEAD', 'OPTIONS']],
  ]

  test.each(PATHS)('a wrong method on %s is a 405 with Allow', async (path, allowed) => {
    for (const method of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE']) {
      if (allowed.includes(method)) continue
      const res = await s.fetch(path, { method, headers: { 'X-Request-Id': 'req-405' } })
      expect(res.status, `${method} ${path}`).toBe(405)
      expect(res.headers.get('allow')).toBe(allowed.join(', '))
      expect(res.headers.get('content-type')).toBe('application/problem+json')
      expect(await res.json()).toMatchObject({ code: 'method_not_allowed', request_id: 'req-405' })
    }
  })

  test.each(PATHS)('OPTIONS %s answers 204 with Allow', async (path, allowed) => {
    const res = await s.fetch(path, { method: 'OPTIONS' })
    expect(res.status).toBe(204)
    expect(res.headers.get('allow')).toBe(allowed.join(', '))
  })

  test('HEAD works wherever GET does, without a body', async () => {
    const res = await s.fetch('/health', { method: 'HEAD' })
    expect(res.status).toBe(200)
    expect(await res.text()).toBe('')
  })

  test('a path that does not exist is still a 404, whatever the method', async () => {
    for (const method of ['GET', 'POST', 'DELETE', 'OPTIONS']) {
      expect((await s.fetch('/api/v1/nope', { method })).status).toBe(404)
    }
  })
})
