// Where `npm run build` puts the deploy artifacts, and the manifest it writes for the artifact
// smoke tests (`npm run test:artifacts`), which load what the build produced, never the sources.
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'

const rootUrl = new URL('..', import.meta.url)
/** The repository root. */
export const root = fileURLToPath(rootUrl)
/** A path relative to the repository root, made absolute. */
export const at = (path: string) => fileURLToPath(new URL(path, rootUrl))

/** `wrangler deploy --dry-run --outdir`: the modules `wrangler deploy` would upload. */
export const CLOUDFLARE_DIR = 'dist/cloudflare'
/** `vercel build`: Build Output API v3, what `vercel deploy --prebuilt` uploads. */
export const VERCEL_OUTPUT_DIR = '.vercel/output'
/** The built edge function bundled into one script, as it is loaded into an edge isolate. */
export const VERCEL_DIST_DIR = 'dist/vercel'
/** The global the edge bundle assigns its module namespace to (`.default` is the handler). */
export const EDGE_BUNDLE_GLOBAL = '__edgeFunction'
/** Written last by the build; the smoke tests start from it. */
export const MANIFEST = 'dist/artifacts.json'

export interface Size {
  bytes: number
  gzipBytes: number
  limitGzipBytes: number
  limit: string
}

export interface ArtifactManifest {
  builtAt: string
  cloudflare: {
    env: string
    dir: string
    /** The entry module (relative to the repository root). */
    entry: string
    /** Every module wrangler would upload (no source maps, no README). */
    modules: string[]
    compatibilityDate: string
    size: Size
  }
  vercel: {
    outputDir: string
    target: 'production' | 'preview'
    /** The `.func` directory serving `/api`, and its `.vc-config.json`. */
    function: { dir: string; runtime: string; entrypoint: string }
    /** That function's files bundled into one classic script. */
    bundle: { path: string; global: string }
    size: Size
    staticFiles: number
  }
}

export async function readManifest(): Promise<ArtifactManifest> {
  const path = at(MANIFEST)
  if (!existsSync(path)) {
    throw new Error(`${MANIFEST} is missing: run \`npm run build\` before the artifact tests`)
  }
  return JSON.parse(await readFile(path, 'utf8')) as ArtifactManifest
}
