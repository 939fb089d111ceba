// POST /mcp — the API as an MCP server (Streamable HTTP, stateless; CONTRACT.md v2).
//
// What runs on every isolate is only this: read the message, find the scope it needs (a
// tools/call needs its tool's scope; anything else any valid token for the MCP resource),
// then requireAuth exactly as the REST routes use it — the token's audience must be the MCP
// resource, 401 and 403 challenges name its metadata, the agent's request limit counts the
// call. The SDK server (./server.ts) is imported on the first authenticated message.
// GET and DELETE (a stateless server has no stream to open and no session to end) are 405
// with Allow, by the app's method-not-allowed answer.
import { type Context, Hono, type MiddlewareHandler } from 'hono'
import { MCP_PATH } from '../auth/resources.ts'
import { type SourceIssue, sourceIssues } from '../contract/json-source.ts'
import { ProblemError, problems } from '../contract/problem.ts'
import { isStorableString, MAX_JSON_DEPTH, unstorableReason } from '../contract/storable.ts'
import type { Scope } from '../contract/token.ts'
import { issuerFor, requireAuth } from '../http/auth.ts'
import { isJsonMediaType, mediaType } from '../http/body.ts'
import type { AppEnv } from '../http/context.ts'
import { type JsonSchema, type Operation, unavailable } from '../http/operation.ts'
import { toolNamed } from './tools.ts'

const JSONRPC_ID = { type: ['string', 'integer'] }

const JSONRPC_MESSAGE: JsonSchema = {
  type: 'object',
  description:
    'One JSON-RPC 2.0 message: a request (`initialize`, `ping`, `tools/list`, `tools/call`), a notification or a response. Batches (arrays) are refused (MCP 2025-06-18 removed them).',
  required: ['jsonrpc'],
  properties: {
    jsonrpc: { const: '2.0' },
    id: JSONRPC_ID,
    method: { type: 'string' },
    params: { type: 'object' },
  },
}

const JSONRPC_ERROR: JsonSchema = {
  type: 'object',
  required: ['jsonrpc', 'error'],
  properties: {
    jsonrpc: { const: '2.0' },
    id: { type: ['string', 'integer', 'null'] },
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: { code: { type: 'integer' }, message: { type: 'string' }, data: {} },
    },
  },
}

const JSONRPC_RESPONSE: JsonSchema = {
  type: 'object',
  description: 'A JSON-RPC 2.0 response: `result` or `error`.',
  required: ['jsonrpc', 'id'],
  properties: {
    jsonrpc: { const: '2.0' },
    id: { type: ['string', 'integer', 'null'] },
    result: { type: 'object' },
    error: JSONRPC_ERROR.properties as JsonSchema,
  },
}

const jsonRpcError = (description: string) => ({
  description,
  optionalHeaders: ['RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset'] as const,
  content: { 'application/json': { schema: JSONRPC_ERROR } },
})

export const mcp = {
  method: 'post',
  path: MCP_PATH,
  operationId: 'mcp',
  summary: 'MCP: Streamable HTTP, stateless',
  description:
    'The tools `get_user_context`, `list_users` (scope `context:read`), `report_progress` and `get_progress_batch` (scope `progress:write`) over the same services as the REST routes. A token must be for the resource `PUBLIC_URL/mcp` (RFC 8707 `resource`); its metadata is `/.well-known/oauth-protected-resource/mcp`. A `tools/call` whose tool needs a scope the token lacks is a `403 insufficient_scope` naming the scope (step-up). `Accept` must list `application/json` and `text/event-stream`; the answer is JSON unless `text/event-stream` is preferred (listed first or with a higher q). No sessions: `GET` and `DELETE` are `405`.',
  tag: 'mcp',
  scope: 'any',
  request: {
    body: {
      description: 'One JSON-RPC 2.0 message',
      content: { 'application/json': { schema: JSONRPC_MESSAGE } },
    },
  },
  responses: {
    '200': {
      description: 'The response to a request: JSON, or an SSE stream carrying it',
      optionalHeaders: ['RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset'],
      headerDocs: {
        'Cache-Control': {
          description: '`no-store` (JSON); `no-cache, no-transform` (an SSE stream).',
          schema: { type: 'string', enum: ['no-store', 'no-cache, no-transform'] },
        },
      },
      content: {
        'application/json': { schema: JSONRPC_RESPONSE },
        'text/event-stream': { schema: { type: 'string' } },
      },
    },
    '202': {
      description: 'A notification or a response, accepted (no body)',
      optionalHeaders: ['RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset'],
    },
    '400': jsonRpcError(
      'A JSON-RPC error: not JSON (-32700), not a JSON-RPC message or a batch (-32600), an unsupported `MCP-Protocol-Version`',
    ),
    '403': {
      description:
        'The token lacks the scope the called tool needs (`insufficient_scope`: the challenge names it), or the request came from another `Origin` (`origin_not_allowed`)',
      problems: ['insufficient_scope', 'origin_not_allowed'],
      optionalHeaders: ['WWW-Authenticate'],
    },
    '406': jsonRpcError('`Accept` does not list both `application/json` and `text/event-stream`'),
    '503': unavailable(['configuration_error', 'auth_unavailable']),
  },
} as const satisfies Operation

export const mcpOperations: readonly Operation[] = [mcp]

type Guard = MiddlewareHandler<AppEnv>
const guard = (scope?: Scope): Guard => requireAuth(scope, { resource: 'mcp' })
const GUARDS: Record<Scope | 'token', Guard> = {
  token: guard(),
  'context:read': guard('context:read'),
  'progress:write': guard('progress:write'),
}

const NOT_JSON = Symbol('not JSON')

/** The scope a message needs beyond a valid token: its tool's, for a tools/call. */
function scopeOf(message: unknown): Scope | undefined {
  if (!message || typeof message !== 'object' || Array.isArray(message)) return undefined
  const { method, params } = message as { method?: unknown; params?: { name?: unknown } }
  if (method !== 'tools/call' || !params || typeof params !== 'object') return undefined
  return toolNamed(params.name)?.scope
}

/** Whether `Accept` prefers an SSE stream to JSON (listed first at an equal q, or higher q). */
export function prefersStream(accept: string | undefined): boolean {
  const ranked = (accept ?? '').split(',').map((part, order) => {
    const [type = '', ...params] = part.split(';')
    const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='))
    return { type: type.trim().toLowerCase(), q: q ? Number(q.slice(2)) : 1, order }
  })
  const sse = ranked.find((r) => r.type === 'text/event-stream')
  const json = ranked.find((r) => r.type === 'application/json')
  if (!sse || !json) return false
  return sse.q > json.q || (sse.q === json.q && sse.order < json.order)
}

const jsonRpcErrorBody = (code: number, message: string) =>
  JSON.stringify({ jsonrpc: '2.0', error: { code, message }, id: null })

/**
 * Why the stores would refuse something in the message's text (U+0000, an unpaired surrogate,
 * in any string — a repeated key's shadowed value included, as REST checks it; nesting past
 * what `data` may have below the message's own levels): the first issue, or undefined.
 */
function unstorableIn(text: string): SourceIssue | undefined {
  return sourceIssues(text, MAX_JSON_DEPTH + MESSAGE_LEVELS, unstorableReason)[0]
}

/** The levels of a tools/call above an update's `data`: message, params, arguments, updates, item. */
const MESSAGE_LEVELS = 5

type SdkServer = typeof import('../mcp/server.ts')

/** The loaded module, kept as a value: once it is there, a request skips `import()` (~5 µs). */
let sdkServer: SdkServer | undefined

/**
 * Each request its own import until one has finished: the module is evaluated once per
 * isolate, and no request awaits a promise another request made. (Spelled through ../mcp/ so
 * the size budget's REST worker, scripts/artifacts/bundle-breakdown.ts, recognises it as
 * lazily loaded MCP code.)
 */
async function loadSdkServer(): Promise<SdkServer> {
  const loaded = await import('../mcp/server.ts')
  sdkServer = loaded
  return loaded
}

async function serve(c: Context<AppEnv>, message: unknown, text: string): Promise<Response> {
  if (!isJsonMediaType(mediaType(c.req.header('content-type')))) {
    throw problems.unsupportedMediaType(['application/json'])
  }
  const error = (code: number, text: string) =>
    c.body(jsonRpcErrorBody(code, text), 400, { 'Content-Type': 'application/json' })
  // Our own answers to what cannot be a message (the SDK's would quote the parser's error).
  if (message === NOT_JSON) return error(-32700, 'Parse error: the body is not JSON')
  if (Array.isArray(message)) return error(-32600, 'Invalid Request: batches are not supported')
  // The SDK parses the message again and passes arguments on as values: what no store accepts
  // is refused here, from the text, before anything is done — in a message's arguments as the
  // SDK refuses arguments (-32602, the fields' paths), elsewhere as no request (-32600).
  const unstorable = unstorableIn(text)
  if (unstorable) {
    const [top, second, ...rest] = unstorable.path
    if (top !== 'params' || second !== 'arguments') {
      return error(-32600, `Invalid Request: ${unstorable.message}`)
    }
    // The path up to the first step that is itself unstorable: nothing of that is echoed.
    const bad = rest.findIndex((step) => typeof step === 'string' && !isStorableString(step))
    const path = (bad < 0 ? rest : rest.slice(0, bad)).join('.')
    const id = (message as { id?: unknown }).id
    return c.json({
      jsonrpc: '2.0',
      id: typeof id === 'number' || typeof id === 'string' ? id : null,
      error: {
        code: -32602,
        message: 'The arguments do not match the input schema',
        data: { errors: [{ path, message: unstorable.message }] },
      },
    })
  }
  const { handleMcp } = sdkServer ?? (await loadSdkServer())
  const answer = await handleMcp(c, message, prefersStream(c.req.header('accept')))
  // Through c.body: the headers every answer carries (RateLimit-* among them) are added to it
  // by responseHeaders (src/http/headers.ts) once it is returned.
  const headers = Object.fromEntries(answer.headers)
  const status = answer.status as 200
  return answer.body ? c.body(answer.body, status, headers) : c.body(null, status, headers)
}

export const mcpRoutes = new Hono<AppEnv>().post(MCP_PATH, async (c) => {
  // MCP Streamable HTTP: servers MUST validate Origin (DNS rebinding). Browsers send it; a
  // page of another origin never reaches the tools, whatever it holds.
  const origin = c.req.header('origin')
  if (origin !== undefined && origin !== issuerFor(c).issuer) {
    throw new ProblemError({
      status: 403,
      code: 'origin_not_allowed',
      detail: 'Requests from other origins are not accepted here',
    })
  }
  const text = await c.req.text()
  let message: unknown = NOT_JSON
  try {
    message = JSON.parse(text)
  } catch {
    // answered after authentication: an unauthenticated caller learns nothing from the body
  }
  let answer: Response | undefined
  await GUARDS[scopeOf(message) ?? 'token'](c, async () => {
    answer = await serve(c, message, text)
  })
  return answer ?? c.res
})
