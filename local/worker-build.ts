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
    sourcemap: true,
    logLevel: 'warning',
  }
}

/** The baseline of every comparison: a bare Hono worker with one route, bundled the same way. */
export const BARE_WORKER = `import { Hono } from 'hono'
const app = new Hono()
app.get('/bare', (c) => c.json({ ok: true }))
export default app`

export async function buildBareWorker(entry: string, outfile: string): Promise<void> {
  await writeFile(entry, BARE_WORKER)
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
