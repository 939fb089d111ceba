// POST /mcp, in both runtimes, through the official MCP SDK client we did not write:
// `Client` + `StreamableHTTPClientTransport` + `ClientCredentialsProvider`, its fetch routed
// into the app (every answer is also contract-checked). Discovery → token → tools/list → each
// tool; the 403 step-up; an unknown user answered like one without a grant; one event for an
// idempotency key used on both surfaces; a burst against the per-agent limit; hostile input.
import { ClientCredentialsProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import {
  StreamableHTTPClientTransport,
  StreamableHTTPError,
} from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { CfWorkerJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/cfworker'
import { describe, expect, test } from 'vitest'
import { sql } from '../../src/db/client.ts'
import {
  agentSecret,
  bearer,
  DEMO_AGENT,
  DEMO_AGENT_2,
  decodeJwt,
  getToken,
  jsonPost,
} from '../support/agents.ts'
import {
  BASE_URL,
  randomSecret,
  roomyIsolate,
  type Scenario,
  scenario,
} from '../support/scenario.ts'

const s = await scenario()
const MCP = `${BASE_URL}/mcp`

/** The SDK's fetch, into the scenario's app. */
const into = (sc: Scenario) => (url: string | URL | Request, init?: RequestInit) =>
  url instanceof Request
    ? sc.fetch(url.url, { ...init, method: url.method, headers: url.headers, body: init?.body })
    : sc.fetch(String(url), init)

/** An SDK client, authorised by client credentials (discovery and token included). */
async function connect(sc: Scenario = s, scope?: string) {
  const provider = new ClientCredentialsProvider({
    clientId: DEMO_AGENT,
    clientSecret: agentSecret(sc),
    expectedIssuer: BASE_URL,
    ...(scope ? { scope } : {}),
  })
  const transport = new StreamableHTTPClientTransport(new URL(MCP), {
    authProvider: provider,
    fetch: into(sc),
  })
  // ajv (the SDK's default) compiles with `new Function`, which neither runtime allows.
  const client = new Client(
    { name: 'scenario', version: '1' },
    { jsonSchemaValidator: new CfWorkerJsonSchemaValidator() },
  )
  await client.connect(transport)
  return { client, provider }
}

/** A token for the MCP resource, as a client that asked for it (RFC 8707) gets it. */
async function mcpToken(sc: Scenario = s, scope?: string, agentId = DEMO_AGENT): Promise<string> {
  const res = await sc.fetch(
    '/api/v1/agent/token',
    jsonPost({
      agent_id: agentId,
      agent_secret: agentSecret(sc),
      resource: MCP,
      ...(scope ? { scope } : {}),
    }),
  )
  expect(res.status).toBe(200)
  return ((await res.json()) as { access_token: string }).access_token
}

let rpcId = 0
/** One raw JSON-RPC POST to /mcp. */
function rpc(token: string | undefined, body: unknown, headers: Record<string, string> = {}) {
  return s.fetch('/mcp', {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      Accept: 'application/json, text/event-stream',
      'MCP-Protocol-Version': '2025-11-25',
      ...(token ? bearer(token) : {}),
      ...headers,
    },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
}
const call = (name: string, args: unknown) => ({
  jsonrpc: '2.0',
  id: ++rpcId,
  method: 'tools/call',
  params: { name, arguments: args },
})

const text = (result: unknown): string =>
  (result as { content: { text: string }[] }).content[0]?.text ?? ''
const now = () => new Date().toISOString()
/** A valid update, with `over` changed. */
const anUpdate = (over: Record<string, unknown> = {}) => ({
  user_id: 'demo-user-1',
  task_id: 't',
  status: 'completed',
  progress: 100,
  occurred_at: now(),
  ...over,
})

describe(`MCP through the SDK client (${s.runtime})`, () => {
  test('discover → token → tools/list → every tool', async () => {
    const { client, provider } = await connect()
    // The token was requested for the MCP resource.
    expect(decodeJwt(provider.tokens()!.access_token).payload.aud).toBe(MCP)
    const capabilities = client.getServerCapabilities()
    expect(capabilities?.tools).toBeDefined()
    expect(capabilities?.extensions).toHaveProperty(
      'io.modelcontextprotocol/oauth-client-credentials',
    )

    const { tools } = await client.listTools()
    expect(tools.map((t) => t.name).sort()).toEqual([
      'get_progress_batch',
      'get_user_context',
      'list_users',
      'report_progress',
    ])
    const byName = Object.fromEntries(tools.map((t) => [t.name, t]))
    expect(byName.get_user_context!.inputSchema).toMatchObject({
      type: 'object',
      required: ['user_id'],
      additionalProperties: false,
    })
    // The update's schema is the REST route's own (its fields, bounds and descriptions).
    const update = (
      byName.report_progress!.inputSchema.properties as Record<
        string,
        { properties: Record<string, unknown>; required: string[] }
      >
    ).update!
    expect(update.properties.progress).toMatchObject({ minimum: 0, maximum: 100 })
    expect(update.required).toEqual(['user_id', 'task_id', 'status', 'progress', 'occurred_at'])
    expect(JSON.stringify(byName.report_progress!.inputSchema)).not.toContain('$ref')
    for (const t of tools) expect(t.outputSchema?.type).toBe('object')

    const users = await client.callTool({ name: 'list_users', arguments: {} })
    expect(users.isError).toBeFalsy()
    expect(users.structuredContent).toEqual({
      users: [
        { id: 'demo-user-1', display_name: expect.any(String) },
        { id: 'demo-user-2', display_name: expect.any(String) },
      ],
      next_cursor: null,
    })

    const context = await client.callTool({
      name: 'get_user_context',
      arguments: { user_id: 'demo-user-1' },
    })
    expect(context.isError).toBeFalsy()
    const rest = await (
      await s.fetch('/api/v1/agent/users/demo-user-1/context', {
        headers: bearer((await getToken(s)).access_token),
      })
    ).json()
    // The REST answer's body, as structured content (the second read is the cache's).
    const { source: _s, cached_at: _c, ...same } = rest
    expect(context.structuredContent).toMatchObject(same)
    expect(text(context)).toMatch(/^Context of demo-user-1: 2 tasks, from (database|cache)\.\n\{/)

    const key = `mcp-${randomSecret(6)}`
    const reported = await client.callTool({
      name: 'report_progress',
      arguments: {
        update: {
          user_id: 'demo-user-2',
          task_id: 'mcp-task',
          status: 'in_progress',
          progress: 30,
          occurred_at: now(),
          idempotency_key: key,
          data: { via: 'mcp', nested: { __proto__: 1 } },
        },
      },
    })
    expect(reported.isError).toBeFalsy()
    const accepted = reported.structuredContent as { batch_id: string; accepted: number }
    expect(accepted).toMatchObject({ accepted: 1, duplicates: 0 })

    const batch = await client.callTool({
      name: 'get_progress_batch',
      arguments: { batch_id: accepted.batch_id },
    })
    expect(batch.isError).toBeFalsy()
    expect(batch.structuredContent).toMatchObject({ batch_id: accepted.batch_id, accepted: 1 })
    await client.close()
  })

  test('an SSE stream when the client prefers one, JSON otherwise', async () => {
    const token = await mcpToken()
    const sse = await rpc(token, call('list_users', {}), {
      Accept: 'text/event-stream, application/json',
    })
    expect(sse.status).toBe(200)
    expect(sse.headers.get('content-type')).toMatch(/^text\/event-stream/)
    const events = await sse.text()
    const data = JSON.parse(/^data: (.*)$/m.exec(events)![1]!)
    expect(data.result.structuredContent.users).toHaveLength(2)

    const json = await rpc(token, call('list_users', {}))
    expect(json.headers.get('content-type')).toMatch(/^application\/json/)
    expect(json.headers.get('ratelimit-limit')).toBeTruthy()
    expect((await json.json()).result.structuredContent.users).toHaveLength(2)
  })

  test('a context:read token calling report_progress: 403 insufficient_scope naming progress:write', async () => {
    const token = await mcpToken(s, 'context:read')
    const res = await rpc(
      token,
      call('report_progress', {
        update: anUpdate(),
      }),
    )
    expect(res.status).toBe(403)
    const challenge = res.headers.get('www-authenticate')!
    expect(challenge).toContain('error="insufficient_scope"')
    expect(challenge).toContain('scope="progress:write"')
    expect(challenge).toContain(
      `resource_metadata="${BASE_URL}/.well-known/oauth-protected-resource/mcp"`,
    )
    // The read tools work with it.
    expect((await rpc(token, call('list_users', {}))).status).toBe(200)

    // The SDK client holding only that token gets the 403 …
    const fixed = new Client(
      { name: 'fixed', version: '1' },
      { jsonSchemaValidator: new CfWorkerJsonSchemaValidator() },
    )
    await fixed.connect(
      new StreamableHTTPClientTransport(new URL(MCP), {
        fetch: into(s),
        requestInit: { headers: bearer(token) },
      }),
    )
    const refused = await fixed
      .callTool({ name: 'report_progress', arguments: { updates: [] } })
      .catch((e: unknown) => e)
    expect(refused).toBeInstanceOf(StreamableHTTPError)
    expect((refused as StreamableHTTPError).code).toBe(403)

    // The SDK's ClientCredentialsProvider reacts to the challenge (it fetches a token again)
    // but asks for the scope it was configured with (SDK 1.32 `fetchToken` uses the client
    // metadata's scope, not the challenge's), so a client pinned to context:read stays refused.
    const { client, provider } = await connect(s, 'context:read')
    expect(decodeJwt(provider.tokens()!.access_token).payload.scope).toBe('context:read')
    const pinned = await client
      .callTool({ name: 'report_progress', arguments: { updates: [] } })
      .catch((e: unknown) => e)
    expect((pinned as StreamableHTTPError).code).toBe(403)
    await client.close()

    // Step-up as the challenge asks: a token with the named scope, for the same resource.
    const scope = /scope="([^"]+)"/.exec(challenge)![1]!
    const stepped = await rpc(
      await mcpToken(s, scope),
      call('report_progress', {
        update: anUpdate({ task_id: 'step-up' }),
      }),
    )
    expect(stepped.status).toBe(200)
    expect((await stepped.json()).result.structuredContent).toMatchObject({ accepted: 1 })
  })

  test('an unknown user gives the same answer as a user without a grant', async () => {
    const { client } = await connect()
    const answers = []
    for (const user_id of ['no-such-user', 'demo-user-3']) {
      const result = await client.callTool({ name: 'get_user_context', arguments: { user_id } })
      expect(result.isError).toBe(true)
      expect(result.structuredContent).toBeUndefined()
      answers.push(text(result).replace(/"request_id":"[^"]*"/, ''))
    }
    expect(answers[0]).toBe(answers[1])
    expect(answers[0]).toContain('"status":404')
    expect(answers[0]).toContain('"code":"not_found"')
    // Progress for either: the same refusal too.
    const refusals = []
    for (const user_id of ['no-such-user', 'demo-user-3']) {
      const result = await client.callTool({
        name: 'report_progress',
        arguments: {
          update: anUpdate({ user_id }),
        },
      })
      expect(result.isError).toBe(true)
      refusals.push(
        text(result)
          .replace(/"request_id":"[^"]*"/, '')
          .replaceAll(user_id, 'U'),
      )
    }
    expect(refusals[0]).toBe(refusals[1])
    await client.close()
  })

  test('an idempotency key used through MCP and then REST is one event', async () => {
    const key = `both-${randomSecret(6)}`
    const update = {
      user_id: 'demo-user-1',
      task_id: 'both-surfaces',
      status: 'completed',
      progress: 100,
      occurred_at: now(),
      idempotency_key: key,
    }
    const { client } = await connect()
    const viaMcp = await client.callTool({ name: 'report_progress', arguments: { update } })
    expect(viaMcp.structuredContent).toMatchObject({ accepted: 1, duplicates: 0 })
    await client.close()
    const viaRest = await s.fetch(
      '/api/v1/agent/progress',
      jsonPost(update, bearer((await getToken(s)).access_token)),
    )
    expect(viaRest.status).toBe(202)
    expect(await viaRest.json()).toMatchObject({ accepted: 0, duplicates: 1 })
    const flushed = await s.fetch('/api/v1/internal/flush', {
      method: 'POST',
      headers: { Authorization: `Bearer ${s.env.CRON_SECRET}` },
    })
    expect(flushed.status).toBe(200)
    const rows = await s
      .db()
      .query(sql`SELECT count(*)::int AS n FROM progress_events WHERE idempotency_key = ${key}`)
    expect(rows).toEqual([{ n: 1 }])
  })
})

describe(`MCP limits, errors and hostile input (${s.runtime})`, () => {
  test.each(['redis', 'no redis'])(
    '50 tools/call at once against a limit of 20 (%s): exactly 20 answered, 30 refused with 429',
    async (mode) => {
      const vars = {
        RATE_LIMIT_REQUESTS_PER_AGENT: '20',
        REDIS_KEY_PREFIX: `t:${randomSecret(6)}:`,
      }
      const limited =
        mode === 'redis'
          ? s.withEnv(vars)
          : s.withEnv({
              ...vars,
              UPSTASH_REDIS_REST_URL: undefined,
              UPSTASH_REDIS_REST_TOKEN: undefined,
            })
      const res = await limited.fetch(
        '/api/v1/agent/token',
        jsonPost({ agent_id: DEMO_AGENT, agent_secret: agentSecret(limited), resource: MCP }),
      )
      const { access_token } = (await res.json()) as { access_token: string }
      const answers = await Promise.all(
        Array.from({ length: 50 }, () =>
          limited.fetch('/mcp', {
            method: 'POST',
            headers: {
              'Content-Type': 'application/json',
              Accept: 'application/json, text/event-stream',
              ...bearer(access_token),
            },
            body: JSON.stringify(call('get_user_context', { user_id: 'demo-user-1' })),
          }),
        ),
      )
      const counts: Record<number, number> = {}
      for (const a of answers) counts[a.status] = (counts[a.status] ?? 0) + 1
      expect(counts).toEqual({ 200: 20, 429: 30 })
      const refused = answers.find((a) => a.status === 429)!
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0)
    },
  )

  test('96 tools/call at once, two agents, JSON and SSE: each answer is its own request’s', async () => {
    // Whatever the server keeps per isolate, requests in flight together must not cross:
    // each answer carries its own id, its own agent's grants and its own user's data.
    const busy = roomyIsolate(s, { RATE_LIMIT_REQUESTS_PER_AGENT: '1000' })
    const tokens = {
      [DEMO_AGENT]: await mcpToken(busy),
      [DEMO_AGENT_2]: await mcpToken(busy, undefined, DEMO_AGENT_2),
    }
    const users = { [DEMO_AGENT]: ['demo-user-1', 'demo-user-2'], [DEMO_AGENT_2]: ['demo-user-3'] }
    // What each agent asks: a user of its own, another agent's user (refused), its list.
    const asks = [
      [DEMO_AGENT, 'demo-user-1'],
      [DEMO_AGENT_2, 'demo-user-3'],
      [DEMO_AGENT, 'demo-user-2'],
      [DEMO_AGENT_2, 'demo-user-1'],
      [DEMO_AGENT, 'demo-user-3'],
      [DEMO_AGENT_2, null],
      [DEMO_AGENT, null],
      [DEMO_AGENT_2, 'demo-user-2'],
    ] as const
    const requests = Array.from({ length: 96 }, (_, i) => {
      const [agent, user] = asks[i % asks.length]!
      return { agent, user, id: i % 2 ? `req-${i}` : i, stream: i % 3 === 0 }
    })
    const answers = await Promise.all(
      requests.map(async ({ agent, user, id, stream }) => {
        const res = await busy.fetch('/mcp', {
          method: 'POST',
          headers: {
            'Content-Type': 'application/json',
            Accept: stream
              ? 'text/event-stream, application/json'
              : 'application/json, text/event-stream',
            'MCP-Protocol-Version': '2025-11-25',
            ...bearer(tokens[agent]!),
          },
          body: JSON.stringify({
            jsonrpc: '2.0',
            id,
            method: 'tools/call',
            params: user
              ? { name: 'get_user_context', arguments: { user_id: user } }
              : { name: 'list_users', arguments: {} },
          }),
        })
        const body = await res.text()
        return {
          status: res.status,
          message: JSON.parse(stream ? /^data: (.*)$/m.exec(body)![1]! : body),
        }
      }),
    )
    answers.forEach(({ status, message }, i) => {
      const { agent, user, id } = requests[i]!
      const what = `#${i} ${agent} ${user ?? 'list_users'}`
      expect(status, what).toBe(200)
      expect(message.id, what).toBe(id)
      const result = message.result as {
        isError?: boolean
        structuredContent: { users: { id: string }[]; user: { id: string } }
      }
      if (user === null) {
        const listed = result.structuredContent.users.map((u) => u.id)
        expect(listed, what).toEqual(users[agent])
      } else if (users[agent]!.includes(user)) {
        expect(result.isError, what).toBeFalsy()
        expect(result.structuredContent.user.id, what).toBe(user)
        expect(text(result), what).toMatch(new RegExp(`^Context of ${user}: `))
      } else {
        expect(result.isError, what).toBe(true)
        expect(text(result), what).toContain('"code":"not_found"')
      }
    })
  })

  test('malformed arguments are protocol errors (-32602) listing each field; nothing is stored', async () => {
    const token = await mcpToken()
    const cases: [string, unknown, string][] = [
      ['get_user_context', { user_id: 'a\u0000b' }, 'user_id'],
      ['get_user_context', { user_id: '\ud800' }, 'user_id'],
      ['get_user_context', {}, 'user_id'],
      ['get_user_context', { user_id: 'demo-user-1', extra: 1 }, 'extra'],
      ['list_users', { limit: 0 }, 'limit'],
      ['list_users', { limit: '5' }, 'limit'],
      ['get_progress_batch', { batch_id: 'x\u0000' }, 'batch_id'],
      ['report_progress', {}, ''],
      [
        'report_progress',
        {
          update: anUpdate({ progress: 101 }),
        },
        'update.progress',
      ],
      [
        'report_progress',
        {
          update: anUpdate({ data: { 'k\u0000': 'v' } }),
        },
        'update.data',
      ],
      [
        'report_progress',
        {
          updates: [anUpdate({ task_id: 'lone \udc00', progress: 1 })],
        },
        'updates.0.task_id',
      ],
    ]
    // What JSON.parse cannot show: a repeated key whose shadowed value no store accepts (REST
    // refuses it from the text; the SDK would pass on the last value alone).
    const shadowed = `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"report_progress","arguments":{"update":{"user_id":"demo-user-1","task_id":"shadow","status":"completed","progress":100,"occurred_at":"${now()}","data":{"k":"\\udc00","k":"ok"}}}}}`
    const refused = await (await rpc(token, shadowed)).json()
    expect(refused).toMatchObject({ id: 7, error: { code: -32602 } })
    expect(refused.error.data.errors[0].path).toBe('update.data.k')
    await s.db().query(sql`SELECT 1`)
    for (const [name, args, path] of cases) {
      const res = await rpc(token, call(name, args))
      expect(res.status).toBe(200)
      const body = await res.json()
      expect(body.error?.code, `${name} ${JSON.stringify(args)}`).toBe(-32602)
      const paths = body.error.data.errors.map((e: { path: string }) => e.path)
      expect(paths.some((p: string) => p.startsWith(path))).toBe(true)
    }
    // A time too far ahead is the service's refusal (as REST's 400), a tool error.
    const future = await rpc(
      token,
      call('report_progress', {
        update: anUpdate({
          progress: 1,
          occurred_at: new Date(Date.now() + 3_600_000).toISOString(),
        }),
      }),
    )
    const futureBody = await future.json()
    expect(futureBody.result.isError).toBe(true)
    expect(text(futureBody.result)).toContain('"status":400')
    // A tool this server does not have, a method it does not serve.
    const unknown = await (await rpc(token, call('drop_tables', {}))).json()
    expect(unknown.error.code).toBe(-32602)
    expect(JSON.stringify(unknown)).not.toContain('drop_tables')
    const method = await (
      await rpc(token, { jsonrpc: '2.0', id: 1, method: 'resources/list' })
    ).json()
    expect(method.error.code).toBe(-32601)
  })

  test('params of the wrong shape are -32602 Invalid params (JSON-RPC 2.0 §5.1), never -32603, with no value quoted', async () => {
    const token = await mcpToken()
    const cases: [unknown, string][] = [
      [
        {
          jsonrpc: '2.0',
          id: 1,
          method: 'tools/call',
          params: { name: 'list_users', arguments: [] },
        },
        'params.arguments',
      ],
      [
        {
          jsonrpc: '2.0',
          id: 2,
          method: 'tools/call',
          params: { name: 'list_users', arguments: 'x' },
        },
        'params.arguments',
      ],
      [{ jsonrpc: '2.0', id: 3, method: 'tools/call', params: {} }, 'params.name'],
      [{ jsonrpc: '2.0', id: 4, method: 'tools/call', params: { name: 5 } }, 'params.name'],
      [
        { jsonrpc: '2.0', id: 5, method: 'initialize', params: { secret: 'hunter2' } },
        'params.protocolVersion',
      ],
    ]
    for (const [message, path] of cases) {
      const res = await rpc(token, message)
      expect(res.status).toBeLessThan(500)
      const body = await res.json()
      const id = (message as { id: number }).id
      expect(body, JSON.stringify(message)).toMatchObject({ id, error: { code: -32602 } })
      expect(body.error.data.errors.map((e: { path: string }) => e.path)).toContain(path)
      expect(JSON.stringify(body)).not.toMatch(/expected|hunter2|list_users/)
    }
    // A well-formed call still answers.
    const ok = await (await rpc(token, call('list_users', {}))).json()
    expect(ok.result.isError).toBeFalsy()
  })

  test('hostile requests: 4xx or JSON-RPC errors, never a 5xx, nothing echoed', async () => {
    const token = await mcpToken()
    const restToken = (await getToken(s)).access_token
    const answers: [string, Response][] = [
      ['no token', await rpc(undefined, call('list_users', {}))],
      ['REST token', await rpc(restToken, call('list_users', {}))],
      ['not JSON', await rpc(token, '{"jsonrpc":"2.0","id":1,"method":"tools/li')],
      ['raw NUL in JSON text', await rpc(token, '{"jsonrpc":"2.0","id":1,"method":"\u0000"}')],
      ['escaped NUL method', await rpc(token, '{"jsonrpc":"2.0","id":1,"method":"\\u0000"}')],
      ['batch', await rpc(token, [call('list_users', {}), call('list_users', {})])],
      ['empty batch', await rpc(token, [])],
      ['a number', await rpc(token, '42')],
      ['null', await rpc(token, 'null')],
      ['no jsonrpc', await rpc(token, { id: 1, method: 'tools/list' })],
      ['jsonrpc 1.0', await rpc(token, { jsonrpc: '1.0', id: 1, method: 'tools/list' })],
      ['id null', await rpc(token, { jsonrpc: '2.0', id: null, method: 'tools/list' })],
      ['id a fraction', await rpc(token, { jsonrpc: '2.0', id: 1.5, method: 'tools/list' })],
      ['huge', await rpc(token, call('list_users', { cursor: 'x'.repeat(70 * 1024) }))],
      [
        'big but under the limit',
        await rpc(token, call('list_users', { cursor: 'x'.repeat(60 * 1024) })),
      ],
      [
        'bad protocol version',
        await rpc(token, call('list_users', {}), { 'MCP-Protocol-Version': '1999-01-01' }),
      ],
      [
        'a protocol version that is no version',
        await rpc(token, call('list_users', {}), { 'MCP-Protocol-Version': 'echo-me-back' }),
      ],
      [
        'a bad protocol version on an initialize that is no initialize request',
        await rpc(
          token,
          { jsonrpc: '2.0', method: 'initialize', params: {} },
          { 'MCP-Protocol-Version': 'echo-me-back' },
        ),
      ],
      ['no Accept', await rpc(token, call('list_users', {}), { Accept: 'application/json' })],
      ['text/plain', await rpc(token, call('list_users', {}), { 'Content-Type': 'text/plain' })],
      [
        'unpaired surrogate id',
        await rpc(token, '{"jsonrpc":"2.0","id":"\\ud800","method":"tools/list"}'),
      ],
      [
        'another Origin',
        await rpc(token, call('list_users', {}), { Origin: 'https://evil.example' }),
      ],
      ['its own Origin', await rpc(token, call('list_users', {}), { Origin: BASE_URL })],
      [
        'GET',
        await s.fetch('/mcp', { headers: { ...bearer(token), Accept: 'text/event-stream' } }),
      ],
      ['DELETE', await s.fetch('/mcp', { method: 'DELETE', headers: bearer(token) })],
    ]
    const statuses = Object.fromEntries(answers.map(([what, res]) => [what, res.status]))
    expect(statuses).toEqual({
      'no token': 401,
      'REST token': 401,
      'not JSON': 400,
      'raw NUL in JSON text': 400,
      // What no store accepts, anywhere in a message, is no request (-32600), never echoed.
      'escaped NUL method': 400,
      batch: 400,
      'empty batch': 400,
      'a number': 400,
      null: 400,
      'no jsonrpc': 400,
      'jsonrpc 1.0': 400,
      'id null': 400,
      'id a fraction': 400,
      huge: 413,
      'big but under the limit': 200,
      'bad protocol version': 400,
      'a protocol version that is no version': 400,
      'a bad protocol version on an initialize that is no initialize request': 400,
      'no Accept': 406,
      'text/plain': 415,
      'unpaired surrogate id': 400,
      'another Origin': 403,
      'its own Origin': 200,
      GET: 405,
      DELETE: 405,
    })
    // JSON-RPC 2.0 §5.1: -32700 only for what is not JSON; JSON that is no message, -32600.
    const codes: Record<string, unknown> = {}
    for (const what of [
      'not JSON',
      'batch',
      'a number',
      'null',
      'no jsonrpc',
      'jsonrpc 1.0',
      'id null',
      'id a fraction',
    ]) {
      const res = answers.find(([w]) => w === what)![1]
      codes[what] = ((await res.clone().json()) as { error: { code: number } }).error.code
    }
    expect(codes).toEqual({
      'not JSON': -32700,
      batch: -32600,
      'a number': -32600,
      null: -32600,
      'no jsonrpc': -32600,
      'jsonrpc 1.0': -32600,
      'id null': -32600,
      'id a fraction': -32600,
    })
    const [noToken] = answers
    expect(noToken![1].headers.get('www-authenticate')).toBe(
      `Bearer realm="agent-api", resource_metadata="${BASE_URL}/.well-known/oauth-protected-resource/mcp"`,
    )
    expect(answers[1]![1].headers.get('www-authenticate')).toContain('error="invalid_token"')
    expect(answers.find(([w]) => w === 'GET')![1].headers.get('allow')).toBe('POST, OPTIONS')
    for (const [what, res] of answers) {
      const body = await res.text()
      expect(body, what).not.toContain('tools/li')
      expect(body, what).not.toContain('xxxxxxxx')
      expect(body, what).not.toMatch(/echo-me-back|1999-01-01/)
    }
  })

  test('one log line per tool call, with the tool name and no request data; metrics per tool', async () => {
    const logged = s.withEnv({ LOG_LEVEL: 'info' })
    const res = await logged.fetch(
      '/api/v1/agent/token',
      jsonPost({ agent_id: DEMO_AGENT, agent_secret: agentSecret(logged), resource: MCP }),
    )
    const { access_token } = (await res.json()) as { access_token: string }
    const marker = `marker-${randomSecret(4)}`
    const before = logged.logs().length
    for (const user_id of ['demo-user-1', marker]) {
      await logged.fetch('/mcp', {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          Accept: 'application/json, text/event-stream',
          ...bearer(access_token),
        },
        body: JSON.stringify(call('get_user_context', { user_id })),
      })
    }
    const lines = logged.logs().slice(before)
    const toolLines = lines.filter((l) => l.includes('"msg":"mcp tool call"'))
    expect(toolLines).toHaveLength(2)
    expect(toolLines.map((l) => JSON.parse(l).outcome)).toEqual(['ok', 'tool_error'])
    for (const l of toolLines) expect(JSON.parse(l).tool).toBe('get_user_context')
    expect(lines.join('\n')).not.toContain(marker)
    expect(lines.join('\n')).not.toContain('demo-user-1')

    const health = await logged.fetch('/api/v1/agent/health', {
      method: 'POST',
      headers: bearer((await getToken(logged)).access_token),
    })
    const report = await health.json()
    const tool = report.health.metrics.mcp_tools.find(
      (t: { tool: string }) => t.tool === 'get_user_context',
    )
    expect(tool.calls).toBeGreaterThanOrEqual(2)
    expect(tool.toolErrors).toBeGreaterThanOrEqual(1)
    expect(tool.lastMinute.p50).not.toBeNull()
  })
})
