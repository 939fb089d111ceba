// The Cloudflare artifact: the Worker modules `wrangler deploy --dry-run` emitted, served by
// workerd through Miniflare with the compatibility date from wrangler.toml (as recorded by the
// build) and the deployment's vars and secrets as bindings.
import { convertV4MiniflareOptions, Log, LogLevel, Miniflare } from 'miniflare'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type ArtifactManifest, at } from '../../local/artifact-layout.ts'
import { type Send, smokeTests, useLocalStack } from './support.ts'

/** A workerd isolate running the modules wrangler would upload, with these bindings. */
function isolate(cloudflare: ArtifactManifest['cloudflare'], env: Record<string, string>) {
  return new Miniflare(
    convertV4MiniflareOptions({
      log: new Log(LogLevel.WARN),
      cf: false, // no request.cf lookup: it needs the internet
      // Every module wrangler would upload, the entry first, named as it names them
      // (relative to the output directory: the chunks the entry imports lazily included).
      modules: [
        cloudflare.entry,
        ...cloudflare.modules.filter((module) => module !== cloudflare.entry),
      ].map((module) => ({ type: 'ESModule' as const, path: at(module) })),
      modulesRoot: at(cloudflare.dir),
      compatibilityDate: cloudflare.compatibilityDate,
      bindings: env,
    }),
  )
}

function sender(worker: Miniflare): Send {
  // Miniflare speaks undici's fetch types; the requests and responses are the same shape.
  type Init = Parameters<Miniflare['dispatchFetch']>[1]
  return async (path, init) =>
    (await worker.dispatchFetch(
      `https://agent-api.test${path}`,
      init as Init,
    )) as unknown as Response
}

describe('Cloudflare Worker bundle (dist/cloudflare)', () => {
  const stack = useLocalStack()
  let mf: Miniflare | undefined
  let send: Send | undefined

  beforeAll(async () => {
    const { manifest, env } = stack()
    mf = isolate(manifest.cloudflare, env)
    await mf.ready
    send = sender(mf)
  }, 60_000)
  afterAll(async () => {
    await mf?.dispose()
  })

  smokeTests(() => send!, stack)

  it('a fresh isolate loads its lazy modules for 60 first requests at once: all answered', async () => {
    // The Neon driver, the MCP server, the OpenAPI generator and a page are modules of their
    // own, each first imported by whichever of these requests gets there first; none may wait
    // on another's promise (workerd cancels it with that request) or see a half-loaded module.
    const token = async (resource?: string) => {
      const res = await send!('/api/v1/agent/token', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({
          agent_id: 'demo-agent',
          agent_secret: stack().env.DEV_AGENT_SECRET,
          ...(resource ? { resource } : {}),
        }),
      })
      return ((await res.json()) as { access_token: string }).access_token
    }
    const [rest, mcp] = await Promise.all([token(), token('https://agent-api.test/mcp')])
    const cold = isolate(stack().manifest.cloudflare, {
      ...stack().env,
      REDIS_KEY_PREFIX: `${stack().env.REDIS_KEY_PREFIX}cold:`,
    })
    try {
      await cold.ready
      const first = sender(cold)
      const requests: (() => Promise<Response>)[] = [
        () =>
          first('/api/v1/agent/users/demo-user-1/context', {
            headers: { Authorization: `Bearer ${rest}` },
          }),
        () =>
          first('/mcp', {
            method: 'POST',
            headers: {
              'Content-Type': 'application/json',
              Accept: 'application/json, text/event-stream',
              Authorization: `Bearer ${mcp}`,
            },
            body: JSON.stringify({
              jsonrpc: '2.0',
              id: 1,
              method: 'tools/call',
              params: { name: 'get_user_context', arguments: { user_id: 'demo-user-2' } },
            }),
          }),
        () => first('/openapi.json'),
        () => first('/health/dashboard', { headers: { Accept: 'text/html' } }),
      ]
      const responses = await Promise.all(
        Array.from({ length: 60 }, (_, i) => requests[i % requests.length]!()),
      )
      const bodies = await Promise.all(responses.map((r) => r.text()))
      expect(responses.map((r) => r.status).filter((status) => status !== 200)).toEqual([])
      for (const [i, body] of bodies.entries()) {
        const kind = i % requests.length
        if (kind === 0) expect(JSON.parse(body).user.id).toBe('demo-user-1')
        if (kind === 1) {
          const call = JSON.parse(body) as {
            result: { structuredContent: { user: { id: string } } }
          }
          expect(call.result.structuredContent.user.id).toBe('demo-user-2')
        }
        if (kind === 2) expect(JSON.parse(body).openapi).toMatch(/^3\.1\./)
        if (kind === 3) expect(body).toContain('<html')
      }
    } finally {
      await cold.dispose()
    }
  }, 60_000)
})
