// GET /api/v1/agent/users, in both runtimes: the agent's granted users, cursor-paged; a
// cursor or limit it did not get from us is a 400; another agent's users never appear.
import { describe, expect, test } from 'vitest'
import { sql } from '../../src/db/client.ts'
import { bearer, DEMO_AGENT_2, getToken } from '../support/agents.ts'
import { scenario } from '../support/scenario.ts'

const s = await scenario()
const auth = bearer((await getToken(s)).access_token)
const list = (query = '') => s.fetch(`/api/v1/agent/users${query}`, { headers: auth })

// More users than a page, with ids whose byte order is not their locale order.
const EXTRA = ['page-a', 'page-B', 'page-ä', 'page-z', 'page-é', 'page-😀', 'page-0']
await s
  .db()
  .transaction([
    ...EXTRA.map((id) => sql`INSERT INTO users (id, display_name) VALUES (${id}, ${`User ${id}`})`),
    ...EXTRA.map(
      (id) => sql`INSERT INTO agent_user_grants (agent_id, user_id) VALUES ('demo-agent', ${id})`,
    ),
  ])
const ALL = ['demo-user-1', 'demo-user-2', ...EXTRA].sort((a, b) => {
  const [x, y] = [new TextEncoder().encode(a), new TextEncoder().encode(b)]
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i]! - y[i]!
  return x.length - y.length
})

describe(`GET /api/v1/agent/users (${s.runtime})`, () => {
  test('one page by default, in byte order, ending with next_cursor null', async () => {
    const res = await list()
    expect(res.status).toBe(200)
    const body = await res.json()
    expect(body.users.map((u: { id: string }) => u.id)).toEqual(ALL)
    expect(body.users[0]).toEqual({ id: ALL[0], display_name: expect.any(String) })
    expect(body.next_cursor).toBeNull()
  })

  test('pages of 2 visit every user once, in order', async () => {
    const seen: string[] = []
    let cursor: string | null = null
    let pages = 0
    do {
      const query: string = `?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`
      const res = await list(query)
      expect(res.status).toBe(200)
      const body = await res.json()
      expect(body.users.length).toBeLessThanOrEqual(2)
      seen.push(...body.users.map((u: { id: string }) => u.id))
      cursor = body.next_cursor
      pages++
    } while (cursor && pages < 20)
    expect(seen).toEqual(ALL)
    expect(pages).toBe(Math.ceil(ALL.length / 2))
  })

  test('another agent sees only its own users', async () => {
    const other = bearer((await getToken(s, DEMO_AGENT_2)).access_token)
    const body = await (await s.fetch('/api/v1/agent/users', { headers: other })).json()
    expect(body).toEqual({
      users: [{ id: 'demo-user-3', display_name: expect.any(String) }],
      next_cursor: null,
    })
  })

  test.each([
    ['?limit=0', 'limit'],
    ['?limit=101', 'limit'],
    ['?limit=abc', 'limit'],
    ['?limit=1.5', 'limit'],
    ['?cursor=not*base64', 'cursor'],
    ['?cursor=AA', 'cursor'], // decodes to NUL
    [`?cursor=${encodeURIComponent('%00')}`, 'cursor'],
    ['?cursor=%00', 'cursor'],
    ['?cursor=%ED%A0%80', 'cursor'],
    ['?cursor=', 'cursor'],
    ['?colour=blue', 'colour'],
  ])('%s is a 400 naming %s', async (query, path) => {
    const res = await list(query)
    expect(res.status).toBe(400)
    const body = await res.json()
    expect(body.code).toBe('validation_failed')
    expect(body.errors.map((e: { path: string }) => e.path)).toContain(path)
  })

  test('needs context:read', async () => {
    const write = bearer((await getToken(s, undefined, { scope: 'progress:write' })).access_token)
    const res = await s.fetch('/api/v1/agent/users', { headers: write })
    expect(res.status).toBe(403)
    expect(res.headers.get('www-authenticate')).toContain('scope="context:read"')
  })
})
