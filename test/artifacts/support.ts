// Shared by the artifact smoke tests: the local stand-ins (real PostgreSQL and Redis behind
// the Neon and Upstash stand-ins; PGlite where no PostgreSQL server runs), the env a deployed
// artifact gets, and the checks every artifact must pass. The artifacts come from
// `npm run build` (dist/artifacts.json), never from the sources.
import { afterAll, beforeAll, expect, it } from 'vitest'
import { type ArtifactManifest, readManifest } from '../../local/artifact-layout.ts'
import { POSTGRES_URL, postgresAvailable, REDIS_URL, redisAvailable } from '../../local/engines.ts'
import { type LocalStack, startLocalStack } from '../../local/stack.ts'
import { toolList } from '../../src/mcp/server.ts'
import { openApiDocument } from '../../src/openapi/generate.ts'
import { OPERATIONS } from '../../src/routes/index.ts'

export interface ArtifactContext {
  manifest: ArtifactManifest
  /** What the deployment would be given: vars and secrets. */
  env: Record<string, string>
  hasRedis: boolean
}

/** Something that sends one request to the artifact under test. */
export type Send = (path: string, init?: RequestInit) => Promise<Response>

function randomSecret(bytes = 32): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(bytes))).toString('base64url')
}

/** Call at the top level of a test file: starts the stand-ins and a fresh demo schema. */
export function useLocalStack(): () => ArtifactContext {
  let stack: LocalStack | undefined
  let context: ArtifactContext | undefined
  beforeAll(async () => {
    const manifest = await readManifest()
    const [hasPostgres, hasRedis] = await Promise.all([postgresAvailable(), redisAvailable()])
    stack = await startLocalStack({
      postgresUrl: hasPostgres ? POSTGRES_URL : undefined,
      redisUrl: hasRedis ? REDIS_URL : false,
    })
    const scenario = await stack.createScenario()
    const env: Record<string, string> = {
      APP_ENV: 'development',
      LOG_LEVEL: 'warn',
      DEV_AGENT_SECRET: randomSecret(),
      DEV_JWT_SECRET: randomSecret(),
      DATABASE_URL: scenario.databaseUrl,
      NEON_FETCH_ENDPOINT: scenario.neonFetchEndpoint,
      REDIS_KEY_PREFIX: `artifact:${randomSecret(6)}:`,
    }
    if (hasRedis && scenario.upstashUrl && scenario.upstashToken) {
      env.UPSTASH_REDIS_REST_URL = scenario.upstashUrl
      env.UPSTASH_REDIS_REST_TOKEN = scenario.upstashToken
    }
    context = { manifest, env, hasRedis }
  }, 120_000)
  afterAll(async () => {
    await stack?.close()
  })
  return () => {
    if (!context) throw new Error('the local stack is not up')
    return context
  }
}

/** The checks every built artifact must pass, registered as tests. */
export function smokeTests(send: () => Send, stack: () => ArtifactContext) {
  it('GET /health answers 200 application/health+json', async () => {
    const res = await send()('/health')
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/^application\/health\+json/)
    const body = (await res.json()) as { status: string; serviceId: string }
    expect(body.serviceId).toBe('agent-api')
    // Every variable is set: no configuration warning.
    expect(body.status).toBe('pass')
  })

  it('GET /health/ready reaches the database (and Redis) through the stand-ins', async () => {
    const res = await send()('/health/ready')
    const body = (await res.json()) as {
      status: string
      checks: Record<string, [{ status: string }]>
    }
    expect(res.status, JSON.stringify(body)).toBe(200)
    expect(body.checks.database?.[0].status).toBe('pass')
    expect(body.checks.redis?.[0].status).toBe(stack().hasRedis ? 'pass' : 'warn')
  })

  it('issues a token to the demo agent, and the token reads a user context', async () => {
    const res = await send()('/api/v1/agent/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ agent_id: 'demo-agent', agent_secret: stack().env.DEV_AGENT_SECRET }),
    })
    const body = (await res.json()) as { access_token?: string; token_type?: string }
    expect(res.status, JSON.stringify(body)).toBe(200)
    expect(body.token_type).toBe('Bearer')
    expect(body.access_token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/)

    const context = await send()('/api/v1/agent/users/demo-user-1/context', {
      headers: { Authorization: `Bearer ${body.access_token}` },
    })
    expect(context.status, await context.clone().text()).toBe(200)
  })

  it('serves /mcp from the bundle: the lazily imported MCP server answers initialize and a tool call', async () => {
    const token = await send()('/api/v1/agent/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({
        agent_id: 'demo-agent',
        agent_secret: stack().env.DEV_AGENT_SECRET,
        resource: 'https://agent-api.test/mcp',
      }),
    })
    const { access_token } = (await token.json()) as { access_token: string }
    const rpc = (body: unknown) =>
      send()('/mcp', {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          Accept: 'application/json, text/event-stream',
          Authorization: `Bearer ${access_token}`,
        },
        body: JSON.stringify(body),
      })
    const init = await rpc({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: {
        protocolVersion: '2025-11-25',
        capabilities: {},
        clientInfo: { name: 'artifact-test', version: '1' },
      },
    })
    expect(init.status, await init.clone().text()).toBe(200)
    const initialized = (await init.json()) as { result: { capabilities: { tools?: object } } }
    expect(initialized.result.capabilities.tools).toBeDefined()
    const call = await rpc({
      jsonrpc: '2.0',
      id: 2,
      method: 'tools/call',
      params: { name: 'get_user_context', arguments: { user_id: 'demo-user-1' } },
    })
    expect(call.status).toBe(200)
    const result = (await call.json()) as {
      result: { isError?: boolean; structuredContent: { user: { id: string } } }
    }
    expect(result.result.isError).toBeFalsy()
    expect(result.result.structuredContent.user.id).toBe('demo-user-1')
    // The tools' JSON Schemas, built in the bundle by the lazy chunk's own zod from the
    // contract's schemas (local/worker-build.ts), are those the sources build.
    const list = await rpc({ jsonrpc: '2.0', id: 3, method: 'tools/list' })
    expect(list.status).toBe(200)
    expect(((await list.json()) as { result: { tools: unknown } }).result.tools).toEqual(
      JSON.parse(JSON.stringify(toolList())),
    )
  })

  it('serves the lazily loaded OpenAPI document and pages from the bundle', async () => {
    const openapi = await send()('/openapi.json')
    expect(openapi.status).toBe(200)
    const served = (await openapi.json()) as { openapi: string; info: { version: string } }
    expect(served.openapi).toMatch(/^3\.1\./)
    // The very document the sources generate (the bundle's generator has a zod of its own).
    expect(served).toEqual(
      JSON.parse(JSON.stringify(openApiDocument(OPERATIONS, served.info.version))),
    )
    for (const path of ['/', '/health/dashboard']) {
      const page = await send()(path, { headers: { Accept: 'text/html' } })
      expect(page.status, path).toBe(200)
      expect(page.headers.get('content-type'), path).toMatch(/^text\/html/)
      expect(await page.text(), path).toContain('<html')
    }
  })

  it('refuses a wrong agent secret', async () => {
    const res = await send()('/api/v1/agent/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ agent_id: 'demo-agent', agent_secret: randomSecret() }),
    })
    expect(res.status).toBe(401)
  })
}
