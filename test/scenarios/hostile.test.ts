// Hostile input, in every field and header of every route, in both runtimes: NULs, unpaired
// surrogates, over-long values, odd encodings and percent-escapes. Whatever arrives, the answer
// is never a 5xx, nothing unstorable is let in, and none of it counts as an outage: no breaker
// opens and the health report raises no alert.
import { describe, expect, test } from 'vitest'
import { isStorableString } from '../../src/contract/storable.ts'
import { agentSecret, bearer, DEMO_AGENT, getToken, jsonPost } from '../support/agents.ts'
import { randomSecret, scenario } from '../support/scenario.ts'

const s = await scenario()
const iso = s.withEnv({
  REDIS_KEY_PREFIX: `t:${randomSecret(6)}:`,
  RATE_LIMIT_REQUESTS_PER_AGENT: '100000',
  ISOLATE: randomSecret(4),
})
const secret = agentSecret(s)
const auth = bearer((await getToken(iso)).access_token)
let address = 0
/** A fresh client address per request: the failure budgets must not hide a 5xx behind a 429. */
const from = () => s.from(`10.${(address >> 16) & 255}.${(address >> 8) & 255}.${address++ & 255}`)

/** Strings no store may be handed (JSON bodies carry them as escapes). */
const UNSTORABLE: [string, string][] = [
  ['a NUL', '\u0000'],
  ['a NUL inside', 'demo-agent\u0000'],
  ['a lone high surrogate', 'x\ud800'],
  ['a lone low surrogate', '\udc00x'],
  ['a reversed pair', '\udc00\ud800'],
]
/** Strings that are storable but odd: they may be accepted, never with a 5xx. */
const ODD: [string, string][] = [
  ['10,000 characters', 'x'.repeat(10_000)],
  ['percent-escapes', '%00%ED%A0%80%C0%80%FF'],
  ['a replacement character and astral plane', '\ufffd𝄞'],
  ['control characters', '\u0001\u001f\u007f\u0085'],
  ['an empty string', ''],
]

const update = (over: Record<string, unknown>) => ({
  user_id: 'demo-user-1',
  task_id: `hostile-${crypto.randomUUID()}`,
  status: 'in_progress',
  progress: 5,
  occurred_at: new Date(Date.now() - 1000).toISOString(),
  ...over,
})

interface Case {
  route: string
  field: string
  send: (value: string) => Promise<Response>
  /** Statuses that mean "refused" for this field; a storable odd value may also be accepted. */
  refused: number[]
  accepted: number[]
}

const TOKEN = '/api/v1/agent/token'
const REVOKE = '/api/v1/agent/token/revoke'
const json = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  iso.fetch(path, jsonPost(body, { ...from(), ...headers }))

const CASES: Case[] = [
  ...(['agent_id', 'agent_secret', 'scope'] as const).map((field) => ({
    route: 'POST token (JSON)',
    field,
    send: (v: string) => json(TOKEN, { agent_id: DEMO_AGENT, agent_secret: secret, [field]: v }),
    refused: [400, 401],
    accepted: field === 'scope' ? [] : [],
  })),
  {
    route: 'POST token (JSON refresh)',
    field: 'refresh_token',
    send: (v) =>
      json(TOKEN, {
        grant_type: 'refresh_token',
        refresh_token: v,
        agent_id: DEMO_AGENT,
        agent_secret: secret,
      }),
    refused: [400, 401],
    accepted: [],
  },
  ...(['client_id', 'client_secret', 'scope', 'grant_type', 'refresh_token'] as const).map(
    (field) => ({
      route: 'POST token (form)',
      field,
      send: (v: string) => {
        const fields: Record<string, string> = {
          grant_type: field === 'refresh_token' ? 'refresh_token' : 'client_credentials',
          client_id: DEMO_AGENT,
          client_secret: secret,
          [field]: v,
        }
        // Built by hand: URLSearchParams would turn an unpaired surrogate into U+FFFD.
        const body = Object.entries(fields)
          .map(([k, x]) => `${k}=${escapeRaw(x)}`)
          .join('&')
        return iso.fetch(TOKEN, {
          method: 'POST',
          headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...from() },
          body,
        })
      },
      refused: [400, 401],
      // An empty value is omitted (RFC 6749 §3.2): an empty scope is no scope at all.
      accepted: field === 'scope' ? [200] : [],
    }),
  ),
  ...(['id', 'secret'] as const).map((part) => ({
    route: 'POST token (Basic)',
    field: `Authorization ${part}`,
    send: (v: string) =>
      iso.fetch(TOKEN, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/x-www-form-urlencoded',
          Authorization: basicRaw(part === 'id' ? v : DEMO_AGENT, part === 'secret' ? v : secret),
          ...from(),
        },
        body: 'grant_type=client_credentials',
      }),
    refused: [400, 401],
    accepted: [],
  })),
  ...(['token', 'token_type_hint', 'agent_id', 'agent_secret'] as const).map((field) => ({
    route: 'POST revoke (JSON)',
    field,
    send: (v: string) =>
      json(REVOKE, { token: 'x', agent_id: DEMO_AGENT, agent_secret: secret, [field]: v }),
    refused: [400, 401],
    // A storable token is revoked if it is one; otherwise 200 too (RFC 7009).
    accepted: field === 'token' ? [200] : [],
  })),
  ...(['user_id', 'task_id', 'idempotency_key', 'occurred_at', 'status'] as const).map((field) => ({
    route: 'POST progress',
    field,
    send: (v: string) => json('/api/v1/agent/progress', update({ [field]: v }), auth),
    refused: [400, 404],
    accepted: field === 'task_id' || field === 'idempotency_key' ? [202] : [],
  })),
  ...(['key', 'value', 'nested key'] as const).map((where) => ({
    route: 'POST progress',
    field: `data ${where}`,
    send: (v: string) =>
      json(
        '/api/v1/agent/progress',
        update({
          data:
            where === 'key' ? { [v]: 1 } : where === 'value' ? { note: v } : { a: [{ [v]: 1 }] },
        }),
        auth,
      ),
    refused: [400],
    accepted: [202], // storable odd data is data
  })),
  ...(['version', 'details value'] as const).map((field) => ({
    route: 'POST agent health',
    field,
    send: (v: string) =>
      json(
        '/api/v1/agent/health',
        field === 'version' ? { version: v } : { details: { [v.slice(0, 50)]: v } },
        auth,
      ),
    refused: [400],
    accepted: [200],
  })),
]

/** Percent-encodes every UTF-16 code unit it can, and lone surrogates as their CESU bytes. */
function escapeRaw(value: string): string {
  let out = ''
  for (const ch of value) {
    const code = ch.codePointAt(0)!
    if (code >= 0xd800 && code <= 0xdfff) {
      out += `%${(0xe0 | (code >> 12)).toString(16)}%${(0x80 | ((code >> 6) & 63)).toString(16)}%${(0x80 | (code & 63)).toString(16)}`
    } else {
      out += encodeURIComponent(ch)
    }
  }
  return out
}

/** Basic credentials as RFC 6749 §2.3.1 builds them: each part form-urlencoded (ASCII). */
function basicRaw(id: string, pass: string): string {
  return `Basic ${btoa(`${escapeRaw(id)}:${escapeRaw(pass)}`)}`
}

describe(`hostile input in every field (${s.runtime})`, () => {
  for (const c of CASES) {
    test.each(UNSTORABLE)(
      `${c.route} ${c.field}: %s is refused, never a 5xx`,
      async (_n, value) => {
        const res = await c.send(value)
        expect(res.status, `${c.route} ${c.field}`).toBeLessThan(500)
        expect(c.refused).toContain(res.status)
      },
    )
    test.each(ODD)(`${c.route} ${c.field}: %s is never a 5xx`, async (_n, value) => {
      const res = await c.send(value)
      expect(res.status).toBeLessThan(500)
      expect([...c.refused, ...c.accepted, 413, 429]).toContain(res.status)
    })
  }
})

describe(`deeply nested JSON under the body limit (${s.runtime})`, () => {
  // 20 KB of brackets: past any recursion a runtime allows, well under the 64 KiB body limit.
  const deep = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`
  const post = (path: string, text: string) =>
    iso.fetch(path, {
      method: 'POST',
      headers: { ...auth, 'Content-Type': 'application/json' },
      body: text,
    })
  const event = (data: string) =>
    `{"user_id":"demo-user-1","task_id":"deep","status":"in_progress","progress":1,"occurred_at":"${new Date(Date.now() - 1000).toISOString()}","data":{"x":${data}}}`

  test.each([10, 2_000, 10_000])(
    'depth %i: a 400 (or accepted when shallow), never a 5xx',
    async (depth) => {
      const answers = [
        await post('/api/v1/agent/health', `{"details":{"x":${deep(depth)}}}`),
        await post('/api/v1/agent/progress', event(deep(depth))),
        await post('/api/v1/agent/progress', `{"updates":[${event(deep(depth))}]}`),
      ]
      for (const res of answers) {
        expect(res.status).toBeLessThan(500)
        expect(depth > 10 ? [400] : [200, 202]).toContain(res.status)
      }
    },
  )
})

describe(`hostile path parameters and headers (${s.runtime})`, () => {
  const RAW_SEGMENTS = [
    '%00',
    'nobody%00',
    'demo-user-1%00',
    '%ED%A0%80',
    '%C0%80',
    '%FF%FE',
    '%25',
    '%2F..%2F',
    'x'.repeat(200),
    '%F0%9D%84%9E',
  ]

  test.each(RAW_SEGMENTS)(
    'context for user %s: 400 or the unknown-user 404, never a 5xx',
    async (segment) => {
      const res = await iso.fetch(`/api/v1/agent/users/${segment}/context`, { headers: auth })
      expect([400, 404]).toContain(res.status)
    },
  )

  test('nobody%00 is a 400 naming userId, never a degraded 200, and the same whether the user exists', async () => {
    const strip = async (res: Response) => {
      const { request_id: _id, ...body } = await res.json()
      return { status: res.status, body }
    }
    const nul = await strip(
      await iso.fetch('/api/v1/agent/users/nobody%00/context', { headers: auth }),
    )
    const known = await strip(
      await iso.fetch('/api/v1/agent/users/demo-user-1%00/context', { headers: auth }),
    )
    expect(nul.status).toBe(400)
    expect(nul.body.code).toBe('validation_failed')
    expect(nul.body.errors).toEqual([{ path: 'userId', message: expect.stringMatching(/NUL/) }])
    expect(known).toEqual(nul)
  })

  test.each(RAW_SEGMENTS)(
    'batch status %s: 400 if unstorable, else 404; never a 5xx',
    async (segment) => {
      const res = await iso.fetch(`/api/v1/agent/progress/batches/${segment}`, { headers: auth })
      const raw = decodeURIComponentSafe(segment)
      expect(res.status).toBe(raw !== undefined && !isStorableString(raw) ? 400 : 404)
    },
  )

  // Header values are bytes (Fetch's ByteString): no NUL or surrogate can arrive, but 0x80–0xFF
  // can, and over-long values.
  const HEADER_VALUES = ['\u00ff\u00fe\u0080', 'é'.repeat(3), 'x'.repeat(9000), '%00%ED%A0%80']

  test.each(HEADER_VALUES)('header value %#: never a 5xx on any route', async (value) => {
    const requests: [string, RequestInit][] = [
      [
        '/api/v1/agent/users/demo-user-1/context',
        { headers: { ...auth, 'If-None-Match': value, 'Cache-Control': value } },
      ],
      [
        '/api/v1/agent/users/demo-user-1/context',
        { headers: { Authorization: `Bearer ${value}` } },
      ],
      ['/api/v1/agent/users/demo-user-1/context', { headers: { Authorization: value } }],
      ['/api/v1/agent/progress', jsonPost(update({}), { ...auth, 'Idempotency-Key': value })],
      [
        TOKEN,
        jsonPost(
          { agent_id: DEMO_AGENT, agent_secret: secret },
          { 'Content-Type': value, ...from() },
        ),
      ],
      [
        TOKEN,
        {
          method: 'POST',
          headers: { Authorization: `Basic ${value}`, ...from() },
          body: 'grant_type=client_credentials',
        },
      ],
      [REVOKE, jsonPost({ token: 'x' }, { Authorization: `Bearer ${value}`, ...from() })],
      [
        '/api/v1/internal/flush',
        { method: 'POST', headers: { Authorization: `Bearer ${value}`, ...from() } },
      ],
      ['/health/ready', { headers: { 'X-Request-Id': value } }],
      ['/api/v1/agent/health', jsonPost({}, { ...auth, 'X-Request-Id': value })],
    ]
    for (const [path, init] of requests) {
      const res = await iso.fetch(path, init)
      expect(res.status, `${init.method ?? 'GET'} ${path}`).toBeLessThan(500)
    }
  })

  test('raw bytes that are not UTF-8, in JSON and form bodies: never a 5xx', async () => {
    const bytes = new Uint8Array([0x7b, 0x22, 0x61, 0xff, 0xfe, 0xc0, 0x80, 0x22, 0x7d])
    for (const [path, type, headers] of [
      [TOKEN, 'application/json', from()],
      [TOKEN, 'application/x-www-form-urlencoded', from()],
      [REVOKE, 'application/x-www-form-urlencoded', from()],
      ['/api/v1/agent/progress', 'application/json', auth],
      ['/api/v1/agent/health', 'application/json', auth],
    ] as const) {
      const res = await iso.fetch(path, {
        method: 'POST',
        headers: { 'Content-Type': type, ...headers },
        body: bytes,
      })
      expect(res.status, path).toBeGreaterThanOrEqual(400)
      expect(res.status, path).toBeLessThan(500)
    }
  })
})

describe(`bad input is not an outage (${s.runtime})`, () => {
  test('25 token requests with a NUL in agent_id: 400s; no alert, no breaker, no upstream failure', async () => {
    const fresh = s.withEnv({ REDIS_KEY_PREFIX: `t:${randomSecret(6)}:`, ISOLATE: randomSecret(4) })
    const freshAuth = bearer((await getToken(fresh)).access_token)
    const responses = await Promise.all(
      Array.from({ length: 25 }, () =>
        fresh.fetch(TOKEN, jsonPost({ agent_id: 'demo-agent\u0000', agent_secret: 'x' }, from())),
      ),
    )
    expect(new Set(responses.map((r) => r.status))).toEqual(new Set([400]))
    const report = await (await fresh.fetch('/api/v1/agent/health', jsonPost({}, freshAuth))).json()
    expect(report.status).not.toBe('unhealthy')
    expect(report.health.alerts).toEqual([])
    const breakers = report.health.checks.find(
      (c: { name: string }) => c.name === 'circuit_breakers',
    )
    expect(breakers.status).toBe('pass')
    expect(report.health.metrics.requests.lastMinute.errors ?? 0).toBe(0)
    for (const up of Object.values(report.health.metrics.upstreams) as { failures: number }[]) {
      expect(up.failures).toBe(0)
    }
  })
})

/** What a path segment decodes to, as the router sees it (undefined: not valid UTF-8). */
function decodeURIComponentSafe(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment)
  } catch {
    return undefined
  }
}
