// `vercel build` (@vercel/node 5) emits an edge function as a traced file tree — the
// transpiled sources plus the node_modules files it resolved — and Vercel bundles that tree
// into one script when it deploys. This does the same locally, from the `.func` directory
// alone, so the size check and the smoke test see the artifact rather than the sources.
import { relative, resolve } from 'node:path'
import * as esbuild from 'esbuild'
import { EDGE_BUNDLE_GLOBAL } from '../../local/artifact-layout.ts'

/**
 * The traced tree holds the file each package resolved to under the edge conditions
 * @vercel/node traces with (edge-light, browser, module, import, require — first matching
 * `exports` key wins). Where that was a package's `require` file (e.g. a package whose
 * `exports` lists `require` before `import`), the `import` file is absent from the tree:
 * resolve such imports the way the tracer did.
 */
const tracedResolution: esbuild.Plugin = {
  name: 'traced-resolution',
  setup(build) {
    build.onResolve({ filter: /^[^./]/ }, async (args) => {
      if (args.pluginData?.traced) return undefined
      const options = {
        resolveDir: args.resolveDir,
        importer: args.importer,
        pluginData: { traced: true },
      }
      const asImported = await build.resolve(args.path, { ...options, kind: args.kind })
      if (asImported.errors.length === 0) return asImported
      const asRequired = await build.resolve(args.path, { ...options, kind: 'require-call' })
      return asRequired.errors.length === 0 ? asRequired : asImported
    })
  },
}

/**
 * Bundles the function's entrypoint into a classic script (edge isolates evaluate scripts)
 * that assigns the module namespace to `globalThis[EDGE_BUNDLE_GLOBAL]`. Fails when anything
 * outside the function directory would be bundled.
 */
export async function bundleEdgeFunction(funcDir: string, entrypoint: string, outfile: string) {
  const result = await esbuild.build({
    entryPoints: [`${funcDir}/${entrypoint}`],
    outfile,
    absWorkingDir: funcDir,
    bundle: true,
    format: 'iife',
    globalName: EDGE_BUNDLE_GLOBAL,
    platform: 'neutral',
    target: 'es2022',
    conditions: ['edge-light', 'browser', 'module'],
    mainFields: ['browser', 'module', 'main'],
    metafile: true,
    logLevel: 'warning',
    plugins: [tracedResolution],
  })
  const outside = Object.keys(result.metafile.inputs).filter((input) =>
    relative(funcDir, resolve(funcDir, input)).startsWith('..'),
  )
  if (outside.length > 0) {
    throw new Error(`the edge bundle reaches outside ${funcDir}: ${outside.join(', ')}`)
  }
  return { inputs: Object.keys(result.metafile.inputs).length }
}
