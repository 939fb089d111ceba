// `npm run build:worker`: the Workers modules (local/worker-build.ts says why they are split)
// into dist/worker/. wrangler.toml's [build] runs it before `wrangler deploy` and `wrangler
// dev`, so what wrangler uploads is always built from the sources at hand.
import { rm } from 'node:fs/promises'
import * as esbuild from 'esbuild'
import { at } from './artifact-layout.ts'
import { WORKER_DIST_DIR, workerDeployBuildOptions } from './worker-build.ts'

await rm(at(WORKER_DIST_DIR), { recursive: true, force: true })
const result = await esbuild.build(workerDeployBuildOptions(at(WORKER_DIST_DIR)))
const outputs = Object.entries(result.metafile?.outputs ?? {}).filter(([f]) => !f.endsWith('.map'))
const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`
const entry = outputs.find(([, out]) => out.entryPoint)
console.log(
  `${WORKER_DIST_DIR}: ${outputs.length} modules, ${kib(outputs.reduce((n, [, out]) => n + out.bytes, 0))} minified (entry ${kib(entry?.[1].bytes ?? 0)})`,
)
