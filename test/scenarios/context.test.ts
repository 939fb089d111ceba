// GET /api/v1/agent/users/{userId}/context, in both runtimes: shape, caching, grants,
// degradation when the database fails.
import { describe, expect, test } from 'vitest'
import { sql } from '../../src/db/client.ts'
import { bearer, DEMO_AGENT_2, getToken, jsonPost } from '../support/agents.ts'
import { scenario } from '../support/scenario.ts'

const s = await scenario({ env: { DATABASE_TIMEOUT_MS: '400', BREAKER_OPEN_MS: '400' } })
const path = (user: string) => `/api/v1/agent/users/${encodeURIComponent(user)}/context`
const token = (await getToken(s)).access_token
const auth = bearer(token)

describe(`user context (${s.runtime})`, () => {
  test('answers the contract’s shape from the database, then from the cache', async () => {
    const first = await s.fetch(path('demo-user-1'), { headers: auth })
    expect(first.status).toBe(200)
    expect(first.headers.get('x-cache')).toBe('MISS')
    expect(first.headers.get('cache-control')).toBe('private, max-age=300')
    const body = await first.json()
    expect(body).toMatchObject({
      user: {
        id: 'demo-user-1',
        display_name: 'Ada Lovelace',
        timezone: 'Europe/Berlin',
        locale: 'de-DE',
      },
      context: { preferences: { tone: 'concise' } },
      source: 'database',
      cached_at: null,
      degraded: false,
    })
    expect(body.progress).toEqual([
      expect.objectContaining({ task_id: 'onboarding', status: 'completed', progress: 100 }),
      expect.objectContaining({ task_id: 'rust-course', status: 'in_progress', progress: 40 }),
    ])
    expect(Date.parse(body.progress[0].updated_at)).not.toBeNaN()

    const second = await s.fetch(path('demo-user-1'), { headers: auth })
    expect(second.headers.get('x-cache')).toBe('HIT')
    expect(second.headers.get('server-timing')).toMatch(/cache;dur=/)
    const cached = await second.json()
    expect(cached).toMatchObject({ source: 'cache', degraded: false })
    expect(Date.parse(cached.cached_at)).not.toBeNaN()
    expect(cached.context).toEqual(body.context)
    expect(second.headers.get('etag')).toBe(first.headers.get('etag'))
  })

  test('a cache hit costs no database request', async () => {
    await s.fetch(path('demo-user-2'), { headers: auth })
    await s.neon.resetStats()
    for (let i = 0; i < 5; i++) {
      expect((await s.fetch(path('demo-user-2'), { headers: auth })).headers.get('x-cache')).toBe(
        'HIT',
      )
    }
    expect((await s.neon.stats()).requests).toBe(0)
  })

  test('ETag and If-None-Match give 304 without a body', async () => {
    const first = await s.fetch(path('demo-user-1'), { headers: auth })
    const etag = first.headers.get('etag')
    expect(etag).toMatch(/^W\/"[0-9a-f]+"$/)
    const again = await s.fetch(path('demo-user-1'), {
      headers: { ...auth, 'If-None-Match': etag! },
    })
    expect(again.status).toBe(304)
    expect(await again.text()).toBe('')
    expect(again.headers.get('etag')).toBe(etag)
    const other = await s.fetch(path('demo-user-1'), {
      headers: { ...auth, 'If-None-Match': 'W/"nope"' },
    })
    expect(other.status).toBe(200)
  })

  test('Cache-Control: no-cache bypasses the cache and refreshes it', async () => {
    await s.db().query(sql`UPDATE users SET display_name = 'Ada King' WHERE id = 'demo-user-1'`)
    const cached = await s.fetch(path('demo-user-1'), { headers: auth })
    expect((await cached.json()).user.display_name).toBe('Ada Lovelace')
    const bypass = await s.fetch(path('demo-user-1'), {
      headers: { ...auth, 'Cache-Control': 'no-cache' },
    })
    expect(bypass.headers.get('x-cache')).toBe('BYPASS')
    expect(await bypass.json()).toMatchObject({
      user: { display_name: 'Ada King' },
      source: 'database',
    })
    const after = await s.fetch(path('demo-user-1'), { headers: auth })
    expect((await after.json()).user.display_name).toBe('Ada King')
    await s.db().query(sql`UPDATE users SET display_name = 'Ada Lovelace' WHERE id = 'demo-user-1'`)
  })

  test('unknown user and another agent’s user are the same 404', async () => {
    const unknown = await s.fetch(path('no-such-user'), { headers: auth })
    const foreign = await s.fetch(path('demo-user-3'), { headers: auth })
    expect(unknown.status).toBe(404)
    expect(foreign.status).toBe(404)
    const strip = async (res: Response) => ({ ...(await res.json()), request_id: undefined })
    expect(await strip(foreign)).toEqual(await strip(unknown))
    // The owner of that user does get it.
    const owner = bearer((await getToken(s, DEMO_AGENT_2)).access_token)
    expect((await s.fetch(path('demo-user-3'), { headers: owner })).status).toBe(200)
  })

  test('a token without context:read gets 403 insufficient_scope', async () => {
    const writer = bearer(
      (await getToken(s, 'demo-agent', { scope: 'progress:write' })).access_token,
    )
    const res = await s.fetch(path('demo-user-1'), { headers: writer })
    expect(res.status).toBe(403)
    expect(res.headers.get('www-authenticate')).toContain('error="insufficient_scope"')
  })
})

describe(`degraded answers (${s.runtime})`, () => {
  test('a broken query still degrades, and is logged as a defect', async () => {
    const fresh = s.withEnv({ CONTEXT_CACHE_TTL_MS: '1' })
    const freshAuth = bearer((await getToken(fresh)).access_token)
    await fresh.fetch(path('demo-user-2'), { headers: freshAuth }) // primes the grant
    await s.db().query(sql`ALTER TABLE user_context RENAME TO user_context_away`)
    try {
      await new Promise((r) => setTimeout(r, 5))
      const res = await fresh.fetch(path('demo-user-2'), { headers: freshAuth })
      expect(res.status).toBe(200)
      expect(res.headers.get('x-degraded')).toBe('database_error')
    } finally {
      await s.db().query(sql`ALTER TABLE user_context_away RENAME TO user_context`)
    }
    expect(s.logs().some((line) => line.includes('context read failed (not an outage)'))).toBe(true)
  })

  test('a fresh context authorized by an expired grant the database cannot confirm is degraded', async () => {
    // An ungrant made meanwhile cannot be seen while the database is down: whatever answers
    // then rests on a grant older than GRANT_CACHE_TTL_MS, and must say so.
    const iso = s.withEnv({
      GRANT_CACHE_TTL_MS: '50',
      CONTEXT_CACHE_TTL_MS: '60000',
      BREAKER_CONSECUTIVE_FAILURES: '1000',
      BREAKER_FAILURE_RATE_PERCENT: '100',
    })
    const auth = bearer((await getToken(iso)).access_token)
    const first = await iso.fetch(path('demo-user-1'), { headers: auth })
    expect(first.status).toBe(200)
    await s.neon.setFaults({ errorRate: 1 })
    try {
      await new Promise((r) => setTimeout(r, 80))
      const res = await iso.fetch(path('demo-user-1'), { headers: auth })
      expect(res.status).toBe(200)
      expect(res.headers.get('x-degraded')).toMatch(/^database_(error|timeout)$/)
      expect(res.headers.get('cache-control')).toBe('private, no-store')
      expect(await res.json()).toMatchObject({ source: 'cache', degraded: true })
    } finally {
      await s.neon.clearFaults()
    }
    const healed = await iso.fetch(path('demo-user-1'), { headers: auth })
    expect((await healed.json()).degraded).toBe(false)
  })

  test.each([
    ['refused', { refuse: true }],
    ['hanging', { hang: true }],
    ['erroring', { errorRate: 1 }],
  ])('database %s: stale cache if any, else a basic answer — never a 5xx', async (_name, plan) => {
    const short = s.withEnv({
      CONTEXT_CACHE_TTL_MS: '1',
      BREAKER_CONSECUTIVE_FAILURES: '1000',
      BREAKER_FAILURE_RATE_PERCENT: '100',
      BREAKER_MINIMUM_CALLS: '20',
      BREAKER_WINDOW_SIZE: '20',
    })
    const shortAuth = bearer((await getToken(short)).access_token)
    await short.fetch(path('demo-user-1'), { headers: shortAuth }) // primes cache and grant
    // Primes demo-user-2's grant alone (no context cached): a progress report checks it.
    const primed = await short.fetch(
      '/api/v1/agent/progress',
      jsonPost(
        {
          user_id: 'demo-user-2',
          task_id: `prime-${crypto.randomUUID()}`,
          status: 'not_started',
          progress: 0,
          occurred_at: new Date().toISOString(),
        },
        shortAuth,
      ),
    )
    expect(primed.status).toBe(202)
    await s.neon.setFaults(plan)
    try {
      await new Promise((r) => setTimeout(r, 5))
      const stale = await short.fetch(path('demo-user-1'), { headers: shortAuth })
      expect(stale.status).toBe(200)
      expect(stale.headers.get('x-degraded')).toMatch(/^database_(error|timeout)$/)
      expect(stale.headers.get('cache-control')).toBe('private, no-store')
      expect(await stale.json()).toMatchObject({
        user: { id: 'demo-user-1', display_name: 'Ada Lovelace' },
        source: 'stale-cache',
        degraded: true,
      })
      const basic = await short.fetch(path('demo-user-2'), { headers: shortAuth })
      expect(basic.status).toBe(200)
      expect(await basic.json()).toEqual({
        user: { id: 'demo-user-2' },
        context: {},
        progress: [],
        source: 'basic',
        cached_at: null,
        degraded: true,
      })
      // A grant nobody can confirm now is no grant: the same 404 as an unknown user, never a
      // degraded 200 (CONTRACT.md v2). demo-user-3 is demo-agent-2's, and nothing is cached.
      for (const user of ['demo-user-3', 'no-such-user']) {
        const unknown = await short.fetch(path(user), { headers: shortAuth })
        expect(unknown.status).toBe(404)
        expect((await unknown.json()).code).toBe('not_found')
      }
    } finally {
      await s.neon.clearFaults()
    }
  })
})
