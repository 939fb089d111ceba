// How the worker is bundled for workerd outside wrangler (dev server, bench): the same
// entry, conditions and target wrangler uses, and the compatibility date from wrangler.toml.
import { readFile, writeFile } from 'node:fs/promises'
import type { BuildOptions } from 'esbuild'
import * as esbuild from 'esbuild'

const root = new URL('..', import.meta.url)

export async function compatibilityDate(): Promise<string> {
  const toml = await readFile(new URL('wrangler.toml', root), 'utf8')
  const match = /^compatibility_date\s*=\s*"([\d-]+)"/m.exec(toml)
  if (!match) throw new Error('wrangler.toml has no compatibility_date')
  return match[1]!
}

export function workerBuildOptions(outfile: string): BuildOptions {
  return {
    entryPoints: [new URL('src/worker.ts', root).pathname],
    outfile,
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    // As wrangler's bundler (4.x): es2024 plus the newer syntax workerd runs natively. Unlike
    // it, no keepNames: wrapping every function and class in a naming call cost 10.5 KiB
    // gzipped and a sixth of start-up, and what our logs record of an error survives without
    // it (ours, Neon's and Upstash's errors set `name` themselves; jose's carry a `code`).
    target: 'es2024',
    supported: { 'import-source': true, using: true },
    define: { 'navigator.userAgent': '"Cloudflare-Workers"' },
    conditions: ['workerd', 'worker', 'browser'],
    mainFields: ['browser', 'module', 'main'],
    // The MCP SDK imports ajv, which workerd cannot run; the server uses the cfworker
    // validator instead, so ajv stays out of the upload (src/mcp/no-ajv.ts says why if it is
    // ever called). Here, not in wrangler.toml: wrangler uploads this build as it is.
    alias: {
      ajv: new URL('src/mcp/no-ajv.ts', root).pathname,
      'ajv-formats': new URL('src/mcp/no-ajv.ts', root).pathname,
    },
    sourcemap: true,
    logLevel: 'warning',
  }
}

/** Where the Workers deploy build writes its modules; wrangler.toml's `main` is the entry. */
export const WORKER_DIST_DIR = 'dist/worker'
/** The entry module's name there (and in wrangler's output directory). */
export const WORKER_ENTRY = 'worker.mjs'

/**
 * The modules `wrangler deploy` uploads: src/worker.ts with wrangler's settings, minified and
 * split at every dynamic import, so an isolate compiles only what its requests load — the MCP
 * server, the Neon driver, the OpenAPI generator and the HTML pages on first use. Built here
 * because wrangler's own bundler inlines every analysable `import()` into one script; it
 * uploads these as they are (wrangler.toml: no_bundle, find_additional_modules).
 */
export function workerDeployBuildOptions(outdir: string): BuildOptions {
  const { outfile: _single, ...options } = workerBuildOptions('')
  return {
    ...options,
    outdir,
    splitting: true,
    minify: true,
    entryNames: 'worker',
    chunkNames: 'chunks/[name]-[hash]',
    // `.mjs`: wrangler.toml's module rule names them as ES modules, and only them (a rule for
    // `.js` would also apply to the CommonJS files the Workers test pool loads).
    outExtension: { '.js': '.mjs' },
    // What wrangler defines for a deploy build.
    define: {
      ...options.define,
      'process.env.NODE_ENV': '"production"',
      'global.process.env.NODE_ENV': '"production"',
      'globalThis.process.env.NODE_ENV': '"production"',
    },
    metafile: true,
  }
}

/** The baseline of every comparison: a bare Hono worker with one route, bundled the same way. */
export const BARE_WORKER = `import { Hono } from 'hono'
const app = new Hono()
app.get('/bare', (c) => c.json({ ok: true }))
export default app`

/**
 * The baseline of a cold authenticated request: a bare Hono worker whose one route verifies
 * the bearer token with jose (the public JWK in `env.JWK`), as a minimal resource server does.
 */
export const BARE_JOSE_WORKER = `import { Hono } from 'hono'
import { importJWK, jwtVerify } from 'jose'
const app = new Hono()
app.get('*', async (c) => {
  const key = await importJWK(JSON.parse(c.env.JWK), 'ES256')
  const token = (c.req.header('authorization') ?? '').slice(7)
  const { payload } = await jwtVerify(token, key)
  return c.json({ sub: payload.sub })
})
export default app`

/**
 * The start-up floor of an authenticated read: a bare Hono worker importing the libraries the
 * app's first authenticated context read needs when Redis is configured (hono, jose, zod/mini
 * through @hono/zod-validator, @upstash/redis, @upstash/ratelimit; the Neon driver is loaded
 * lazily by the app too), building nothing at module scope. Its route uses them, so nothing is
 * shaken out that a real route would keep.
 */
export const BARE_LIBRARIES_WORKER = `import { Hono } from 'hono'
import { importJWK, jwtVerify } from 'jose'
import { Redis } from '@upstash/redis'
import { Ratelimit } from '@upstash/ratelimit'
import * as z from 'zod/mini'
import { zValidator } from '@hono/zod-validator'
const app = new Hono()
app.get('*', zValidator('query', z.object({ user_id: z.optional(z.string()) })), async (c) => {
  const redis = new Redis({ url: c.env.UPSTASH_REDIS_REST_URL, token: c.env.UPSTASH_REDIS_REST_TOKEN })
  const limiter = new Ratelimit({ redis, limiter: Ratelimit.slidingWindow(600, '60 s') })
  const key = await importJWK(JSON.parse(c.env.JWK), 'ES256')
  const { payload } = await jwtVerify((c.req.header('authorization') ?? '').slice(7), key)
  const { success } = await limiter.limit(String(payload.sub))
  return c.json({ sub: payload.sub }, success ? 200 : 429)
})
export default app`

/**
 * The least a progress write can cost: a bare Hono worker whose one route reads the JSON body
 * and writes it to Redis with one Upstash REST call (`SET … PX`, no client library), then
 * answers 202 — the durable acceptance every buffered write needs.
 */
export const BARE_REDIS_WORKER = `import { Hono } from 'hono'
const app = new Hono()
app.post('*', async (c) => {
  const update = await c.req.json()
  const res = await fetch(c.env.UPSTASH_REDIS_REST_URL, {
    method: 'POST',
    headers: { authorization: 'Bearer ' + c.env.UPSTASH_REDIS_REST_TOKEN },
    body: JSON.stringify(['SET', 'bench:bare:' + update.idempotency_key, JSON.stringify(update), 'PX', '60000']),
  })
  if (!res.ok) return c.json({ error: res.status }, 503)
  await res.json()
  return c.json({ accepted: true }, 202)
})
export default app`

export async function buildBareWorker(
  entry: string,
  outfile: string,
  source: string = BARE_WORKER,
): Promise<void> {
  await writeFile(entry, source)
  await esbuild.build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    minify: true,
    format: 'esm',
    platform: 'neutral',
    conditions: ['workerd', 'worker', 'browser'],
    mainFields: ['browser', 'module', 'main'],
    nodePaths: [new URL('node_modules', root).pathname],
    logLevel: 'error',
  })
}
