// The least a tools/call over the MCP SDK costs: a bare Hono route building the SDK's
// stateless Server and web-standard Streamable HTTP transport per request, with the options
// src/mcp/server.ts gives them, and answering with a result built in advance. No auth, no
// rate limit, no service call, no checks of ours: what is left is the SDK's own work.
import { Server } from '@modelcontextprotocol/sdk/server/index.js'
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js'
import {
  CallToolRequestSchema,
  type CallToolResult,
  ListToolsRequestSchema,
} from '@modelcontextprotocol/sdk/types.js'
import { CfWorkerJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/cfworker'
import { Hono } from 'hono'

const validator = new CfWorkerJsonSchemaValidator()

/**
 * A caller of the floor route: `(token) => Response` for the same tools/call message and
 * headers the bench sends to /mcp, answered with `result` (a tools/call result, as the app
 * answered it).
 */
export function mcpFloor(result: unknown): (token: string) => Promise<Response> {
  const app = new Hono().post('/mcp', async (c) => {
    const message: unknown = await c.req.json()
    const server = new Server(
      { name: 'floor', version: '1' },
      { capabilities: { tools: { listChanged: false } }, jsonSchemaValidator: validator },
    )
    server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: [] }))
    server.setRequestHandler(CallToolRequestSchema, () => result as CallToolResult)
    const transport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: undefined,
      enableJsonResponse: true,
      keepAliveMs: 0,
    })
    await server.connect(transport)
    return transport.handleRequest(c.req.raw, { parsedBody: message })
  })
  const body = JSON.stringify({
    jsonrpc: '2.0',
    id: 1,
    method: 'tools/call',
    params: { name: 'get_user_context', arguments: { user_id: 'demo-user-1' } },
  })
  const length = String(new TextEncoder().encode(body).byteLength)
  return async (token) =>
    app.fetch(
      new Request('http://bench.local/mcp', {
        method: 'POST',
        headers: new Headers({
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-protocol-version': '2025-11-25',
          'content-length': length,
        }),
        body,
      }),
    )
}
