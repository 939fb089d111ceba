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
    target: 'es2022',
    conditions: ['workerd', 'worker', 'browser'],
    mainFields: ['browser', 'module', 'main'],
    // As wrangler.toml's [alias]: ajv stays out of the worker (src/mcp/no-ajv.ts).
    alias: {
      ajv: new URL('src/mcp/no-ajv.ts', root).pathname,
      'ajv-formats': new URL('src/mcp/no-ajv.ts', root).pathname,
    },
    sourcemap: true,
    logLevel: 'warning',
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
