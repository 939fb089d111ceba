// The MCP server behind POST /mcp: the SDK's Server over its web-standard Streamable HTTP
// transport, stateless (no session: requests land in different isolates, so each builds its
// own server and transport and nothing outlives the request). Loaded by dynamic import when
// /mcp is first called, so REST-only isolates never evaluate the SDK (its protocol schemas are
// classic zod, built when the module loads).
//
// Validation: the SDK's default JSON Schema validator is ajv, which compiles schemas with
// `new Function` — workerd and Vercel's edge VM both refuse code generation from strings —
// so the server takes @cfworker/json-schema's (an interpreter) instead.
import { Server } from '@modelcontextprotocol/sdk/server/index.js'
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js'
import {
  CallToolRequestSchema,
  type CallToolResult,
  ErrorCode,
  InitializeRequestSchema,
  isInitializeRequest,
  ListToolsRequestSchema,
  McpError,
  type Tool as McpTool,
  PingRequestSchema,
  SUPPORTED_PROTOCOL_VERSIONS,
} from '@modelcontextprotocol/sdk/types.js'
import { CfWorkerJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/cfworker'
import type { Context } from 'hono'
import { ProblemError, problemBody } from '../contract/problem.ts'
import type { AppEnv } from '../http/context.ts'
import { toolJsonSchema } from './schema.ts'
import { InvalidArguments, TOOLS, toolNamed } from './tools.ts'

/** The OAuth client credentials extension (SEP-1046): how agents get tokens here. */
export const CLIENT_CREDENTIALS_EXTENSION = 'io.modelcontextprotocol/oauth-client-credentials'

const SERVER_INFO = { name: 'agent-api', title: 'Agent API', version: '1' }

const INSTRUCTIONS =
  'User context and durable, idempotent progress writes for the users this agent holds grants for. `list_users` names them; `get_user_context` reads one; `report_progress` records progress (give each update an idempotency_key) and `get_progress_batch` says whether it reached the database.'

const validator = new CfWorkerJsonSchemaValidator()

let listed: McpTool[] | undefined

/** tools/list's answer, built once per isolate from the tools' zod schemas. */
export function toolList(): McpTool[] {
  listed ??= TOOLS.map((tool) => ({
    name: tool.name,
    title: tool.title,
    description: tool.description,
    inputSchema: toolJsonSchema(tool.input(), 'input'),
    outputSchema: toolJsonSchema(tool.output(), 'output'),
    annotations: {
      title: tool.title,
      readOnlyHint: tool.readOnly,
      // A write with the same idempotency keys is recorded once.
      idempotentHint: true,
      destructiveHint: false,
      openWorldHint: false,
    },
  }))
  return listed
}

/**
 * Answers one authenticated MCP message (`message`: parsed JSON, not an array) as the SDK's
 * transport does: a JSON body, or an SSE stream when `stream`; 202 for a notification.
 */
export async function handleMcp(
  c: Context<AppEnv>,
  message: unknown,
  stream: boolean,
): Promise<Response> {
  const invalid = invalidParams(message)
  if (invalid) return invalid
  const unsupported = unsupportedVersion(c.req.header('mcp-protocol-version'), message)
  if (unsupported) return unsupported
  // A server per request, not one per isolate: the SDK's Protocol holds one transport at a
  // time (connect throws while one is attached), keys its in-flight handlers by JSON-RPC id
  // (two clients' `id: 1` would collide) and aborts every in-flight handler when a transport
  // closes; and a stateless transport refuses a second request. Building one costs ~4 µs
  // here, less than closing one for reuse (~20 µs: close builds an McpError).
  const server = new Server(SERVER_INFO, {
    capabilities: {
      tools: { listChanged: false },
      extensions: { [CLIENT_CREDENTIALS_EXTENSION]: {} },
    },
    instructions: INSTRUCTIONS,
    jsonSchemaValidator: validator,
  })
  server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: toolList() }))
  server.setRequestHandler(CallToolRequestSchema, (request) =>
    callTool(c, request.params.name, request.params.arguments),
  )
  // The SDK reports transport errors with their text, which may quote the request: dropped.
  server.onerror = () => {}
  const transport = new WebStandardStreamableHTTPServerTransport({
    sessionIdGenerator: undefined,
    enableJsonResponse: !stream,
    // No timers: a stateless stream ends with its last response.
    keepAliveMs: 0,
  })
  await server.connect(transport)
  const answer = await transport.handleRequest(c.req.raw, { parsedBody: message })
  return answer.status === 400 ? notAMessage(answer) : answer
}

/**
 * The SDK answers JSON that is no JSON-RPC message (no `jsonrpc: "2.0"`, an `id` of null or a
 * fraction, a number…) with -32700 Parse error. The body was JSON (the route parsed it), so
 * that is JSON-RPC 2.0 §5.1's -32600 Invalid Request, as our document says. Other 400s pass.
 */
async function notAMessage(answer: Response): Promise<Response> {
  const text = await answer.text()
  let error: { code?: unknown; message?: unknown } | undefined
  try {
    error = (JSON.parse(text) as { error?: typeof error }).error
  } catch {}
  if (error?.code !== ErrorCode.ParseError || error.message !== SDK_NOT_A_MESSAGE) {
    return new Response(text, answer)
  }
  return Response.json(
    {
      jsonrpc: '2.0',
      error: {
        code: ErrorCode.InvalidRequest,
        message: 'Invalid Request: not a JSON-RPC 2.0 message',
      },
      id: null,
    },
    { status: 400 },
  )
}

/** What the SDK's transport says of parsed JSON its JSONRPCMessageSchema refuses. */
const SDK_NOT_A_MESSAGE = 'Parse error: Invalid JSON-RPC message'

/**
 * MCP Streamable HTTP (2025-06-18 §2.7): a request after initialization naming a protocol
 * version the server does not support is a 400. Answered here, as the SDK would but without
 * quoting the header's value back: only the versions supported are named.
 */
function unsupportedVersion(version: string | undefined, message: unknown): Response | undefined {
  if (version === undefined || SUPPORTED_PROTOCOL_VERSIONS.includes(version)) return undefined
  // Exactly the SDK's exemption (a well-formed initialize request), or it checks and quotes.
  if (isInitializeRequest(message)) return undefined
  return Response.json(
    {
      jsonrpc: '2.0',
      error: {
        code: -32000,
        message: `Bad Request: Unsupported protocol version (supported versions: ${SUPPORTED_PROTOCOL_VERSIONS.join(', ')})`,
      },
      id: null,
    },
    { status: 400 },
  )
}

/** The requests this server answers, by method, with the SDK's own schemas for them. */
const REQUESTS = {
  initialize: InitializeRequestSchema,
  ping: PingRequestSchema,
  'tools/list': ListToolsRequestSchema,
  'tools/call': CallToolRequestSchema,
} as const

/**
 * A request to one of REQUESTS whose params do not match: JSON-RPC's -32602 (JSON-RPC 2.0
 * §5.1), with the paths of what is wrong (at most two steps, fixed names of the protocol).
 * The SDK itself would answer -32603 Internal error quoting zod's text, which carries the
 * request's values. Undefined when the message is anything else (the SDK answers it).
 */
function invalidParams(message: unknown): Response | undefined {
  if (message === null || typeof message !== 'object') return undefined
  const { method, id } = message as { method?: unknown; id?: unknown }
  if (typeof method !== 'string' || !Object.hasOwn(REQUESTS, method)) return undefined
  if (typeof id !== 'string' && typeof id !== 'number') return undefined
  const parsed = REQUESTS[method as keyof typeof REQUESTS].safeParse(message)
  if (parsed.success) return undefined
  const paths = [
    ...new Set(parsed.error.issues.map((issue) => issue.path.slice(0, 2).map(String).join('.'))),
  ]
  return Response.json({
    jsonrpc: '2.0',
    id,
    error: {
      code: ErrorCode.InvalidParams,
      message: 'Invalid params',
      data: { errors: paths.map((path) => ({ path, message: 'Invalid value' })) },
    },
  })
}

/**
 * One tools/call: the tool's service call, its REST body as `structuredContent` and in the
 * text; a domain answer (a ProblemError: unknown user, no grant, 503) as an `isError` result
 * carrying the REST problem; arguments that do not match as a protocol error (-32602).
 * Emits `mcp.tool` and writes one log line (the tool's name and outcome, no request data).
 */
async function callTool(c: Context<AppEnv>, name: string, args: unknown): Promise<CallToolResult> {
  const tool = toolNamed(name)
  // The name is request data: not repeated.
  if (!tool) throw new McpError(ErrorCode.InvalidParams, 'No such tool; see tools/list')
  const { events } = c.get('services')
  const log = c.get('log')
  const start = performance.now()
  let outcome: 'ok' | 'tool_error' | 'invalid' | 'failed' = 'failed'
  try {
    const answer = await tool.call(c, args)
    outcome = 'ok'
    const json = answer.json ?? JSON.stringify(answer.structured)
    return {
      content: [{ type: 'text', text: `${answer.summary}\n${json}` }],
      structuredContent: answer.structured,
    }
  } catch (err) {
    if (err instanceof InvalidArguments) {
      outcome = 'invalid'
      throw new McpError(ErrorCode.InvalidParams, 'The arguments do not match the input schema', {
        errors: err.errors,
      })
    }
    if (err instanceof ProblemError) {
      // What the REST route would answer, no more: the same problem body (and, for a 503,
      // when to retry and whether anything was accepted: its `code`).
      outcome = err.problem.status >= 500 ? 'failed' : 'tool_error'
      const retryAfter = err.problem.headers?.['Retry-After']
      const body = {
        ...problemBody(err.problem, c.get('requestId')),
        ...(retryAfter ? { retry_after: Number(retryAfter) } : {}),
      }
      return {
        isError: true,
        content: [
          {
            type: 'text',
            text: `${body.detail ?? body.title} (${body.code})\n${JSON.stringify(body)}`,
          },
        ],
      }
    }
    log.error('tool call failed', { tool: tool.name, error: err })
    throw new McpError(ErrorCode.InternalError, 'Internal error')
  } finally {
    const durationMs = performance.now() - start
    events.emit({ type: 'mcp.tool', tool: tool.name, outcome, durationMs })
    if (log.enabled('info')) {
      log.info('mcp tool call', {
        tool: tool.name,
        outcome,
        duration_ms: Math.round(durationMs * 10) / 10,
      })
    }
  }
}
