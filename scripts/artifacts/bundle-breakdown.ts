// What the worker bundle is made of: bytes per package from esbuild's metafile, for the whole
// worker and for the REST worker (without the MCP and docs code only a dynamic import loads).
// Used by `npm run bench` (figures, --explain) and `npm run build` (the size budget).
import { readFile } from 'node:fs/promises'
import { gzipSync } from 'node:zlib'
import * as esbuild from 'esbuild'
import { workerBuildOptions, workerDeployBuildOptions } from '../../local/worker-build.ts'

const root = new URL('../..', import.meta.url).pathname

/** `node_modules/@scope/name/…` → `@scope/name`; `src/auth/x.ts` → `src/auth`; else the path. */
export function packageOf(path: string): string {
  const rel = path.startsWith(root) ? path.slice(root.length) : path
  const nm = rel.lastIndexOf('node_modules/')
  if (nm >= 0) {
    const parts = rel.slice(nm + 'node_modules/'.length).split('/')
    return parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!
  }
  const parts = rel.split('/')
  return parts[0] === 'src' && parts.length > 2 ? `src/${parts[1]}` : rel
}

export interface PackageBytes {
  name: string
  /** Minified bytes in the bundle (esbuild's bytesInOutput). */
  bytes: number
  /** The package's share of the gzipped bundle, in proportion to its minified bytes. */
  gzipShare: number
}

/**
 * What only MCP and documentation requests load, by dynamic import. The Neon driver is loaded
 * lazily too but serves REST traffic, so it stays in.
 */
export const NOT_REST = /\/(mcp|openapi|pages|html)\//

/** Leaves the `import()` targets matching NOT_REST out: what remains serves REST requests. */
const excludeLazy: esbuild.Plugin = {
  name: 'exclude-lazy',
  setup(build) {
    build.onResolve({ filter: /.*/ }, (args) =>
      args.kind === 'dynamic-import' && NOT_REST.test(args.path)
        ? { path: args.path, external: true }
        : undefined,
    )
  },
}

/**
 * Bytes per package of the worker bundle as wrangler builds it (same entry and conditions,
 * minified). `lazy: 'excluded'` leaves out the MCP and documentation code that only a
 * dynamic import loads (the REST worker).
 */
export async function bundleBreakdown(
  outfile: string,
  options: { lazy?: 'included' | 'excluded' } = {},
): Promise<{ total: number; gzip: number; packages: PackageBytes[] }> {
  const result = await esbuild.build({
    ...workerBuildOptions(outfile),
    minify: true,
    metafile: true,
    sourcemap: false,
    plugins: options.lazy === 'excluded' ? [excludeLazy] : [],
  })
  const out = Object.values(result.metafile.outputs)[0]!
  const bytes = new Map<string, number>()
  for (const [path, input] of Object.entries(out.inputs)) {
    const name = packageOf(path)
    bytes.set(name, (bytes.get(name) ?? 0) + input.bytesInOutput)
  }
  const code = await readFile(outfile)
  const gzip = gzipSync(code, { level: 9 }).byteLength
  const total = code.byteLength
  const packages = [...bytes]
    .map(([name, b]) => ({ name, bytes: b, gzipShare: (b / total) * gzip }))
    .sort((a, b) => b.bytes - a.bytes)
  return { total, gzip, packages }
}

/**
 * The deployed modules (split at the dynamic imports, minified): bytes per package of the
 * entry and the chunks it imports statically — what an isolate compiles at start-up — and of
 * every module, lazily loaded chunks included. Gzip shares as in `bundleBreakdown`.
 */
export async function startupBreakdown(outdir: string): Promise<{
  startup: { total: number; gzip: number; packages: PackageBytes[] }
  modules: number
  /** The lazily loaded sources (LAZY_SOURCES) that start-up compiles nonetheless. */
  eager: string[]
}> {
  const result = await esbuild.build({ ...workerDeployBuildOptions(outdir), sourcemap: false })
  const outputs = result.metafile!.outputs
  const entry = Object.keys(outputs).find((file) => outputs[file]!.entryPoint)!
  const graph = new Set<string>()
  for (const stack = [entry]; stack.length > 0; ) {
    const file = stack.pop()!
    if (graph.has(file)) continue
    graph.add(file)
    for (const i of outputs[file]!.imports) if (i.kind === 'import-statement') stack.push(i.path)
  }
  const bytes = new Map<string, number>()
  for (const file of graph) {
    for (const [path, input] of Object.entries(outputs[file]!.inputs)) {
      bytes.set(packageOf(path), (bytes.get(packageOf(path)) ?? 0) + input.bytesInOutput)
    }
  }
  const code = Buffer.concat(await Promise.all([...graph].map((file) => readFile(file))))
  const gzip = gzipSync(code, { level: 9 }).byteLength
  const total = code.byteLength
  const packages = [...bytes]
    .map(([name, b]) => ({ name, bytes: b, gzipShare: (b / total) * gzip }))
    .sort((a, b) => b.bytes - a.bytes)
  const eager = [...graph]
    .flatMap((file) => Object.keys(outputs[file]!.inputs))
    .filter((input) => LAZY_SOURCES.some((lazy) => lazy.test(input)))
  return { startup: { total, gzip, packages }, modules: Object.keys(outputs).length, eager }
}

/**
 * Sources only a dynamic import may load (each behind the route that needs it): the MCP
 * server, the Neon driver, the OpenAPI generator, the HTML pages.
 */
export const LAZY_SOURCES: readonly RegExp[] = [
  /(^|\/)src\/mcp\/server\.ts$/,
  /\/@neondatabase\/serverless\//,
  /(^|\/)src\/openapi\/generate\.ts$/,
  /(^|\/)src\/routes\/html\//,
]
