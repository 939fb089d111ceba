// `npm run bench` — speed and size, each figure next to a baseline measured in the same run.
// `npm run bench -- --json` prints the same as one JSON object. Not a test: nothing here fails
// the build; goals are reported as met or not met.
import { spawnSync } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import * as esbuild from 'esbuild'
import { Hono } from 'hono'
import { createApp } from '../src/app.ts'
import { cpuPerRequest, machine, median } from './bench/measure.ts'

interface Figure {
  id: string
  label: string
  value: number
  unit: string
  baseline?: { label: string; value: number }
  /** value / baseline */
  ratio?: number
  goal?: { text: string; met: boolean }
}

const root = new URL('..', import.meta.url).pathname
const json = process.argv.includes('--json')
const figures: Figure[] = []

function add(figure: Figure) {
  if (figure.baseline && figure.ratio === undefined) {
    figure.ratio = figure.value / figure.baseline.value
  }
  figures.push(figure)
  if (!json) {
    const base = figure.baseline
      ? `   baseline ${fmt(figure.baseline.value)} ${figure.unit} (${figure.baseline.label})   ratio ${figure.ratio?.toFixed(2)}×`
      : ''
    const goal = figure.goal
      ? `   goal ${figure.goal.text}: ${figure.goal.met ? 'met' : 'NOT met'}`
      : ''
    console.log(
      `${figure.label.padEnd(46)} ${fmt(figure.value).padStart(10)} ${figure.unit}${base}${goal}`,
    )
  }
}

function fmt(n: number): string {
  return n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2)
}

const BARE_WORKER = `import { Hono } from 'hono'
const app = new Hono()
app.get('/health', (c) => c.json({ status: 'pass' }))
export default app`

async function bundleFigures(work: string) {
  // The deployable bundle exactly as wrangler builds it.
  const out = join(work, 'worker')
  const result = spawnSync(
    'npx',
    ['wrangler', 'deploy', '--dry-run', '--minify', '--outdir', out, '--env', ''],
    { cwd: root, encoding: 'utf8', env: { ...process.env, WRANGLER_SEND_METRICS: 'false' } },
  )
  if (result.status !== 0) throw new Error(`wrangler dry-run failed:\n${result.stderr}`)
  const worker = await readFile(join(out, 'worker.js'))

  // A bare Hono worker bundled with the same settings, for the baseline.
  const bareEntry = join(work, 'bare.ts')
  await writeFile(bareEntry, BARE_WORKER)
  const bareOut = join(work, 'bare.js')
  await esbuild.build({
    entryPoints: [bareEntry],
    outfile: bareOut,
    bundle: true,
    minify: true,
    format: 'esm',
    platform: 'neutral',
    conditions: ['workerd', 'worker', 'browser'],
    mainFields: ['browser', 'module', 'main'],
    nodePaths: [join(root, 'node_modules')],
    logLevel: 'error',
  })
  const bare = await readFile(bareOut)

  add({
    id: 'bundle.minified',
    label: 'worker bundle, minified',
    value: worker.byteLength / 1024,
    unit: 'KiB',
    baseline: { label: 'bare Hono worker', value: bare.byteLength / 1024 },
  })
  const gzipped = gzipSync(worker, { level: 9 }).byteLength / 1024
  add({
    id: 'bundle.gzip',
    label: 'worker bundle, minified + gzip',
    value: gzipped,
    unit: 'KiB',
    baseline: { label: 'bare Hono worker', value: gzipSync(bare, { level: 9 }).byteLength / 1024 },
    // Cloudflare's free plan allows 3 MiB gzipped; Vercel's edge functions 1 MiB (Hobby).
    goal: { text: '< 1024 KiB (Vercel Hobby edge limit)', met: gzipped < 1024 },
  })

  // Module start-up: evaluating the bundle's top level, fresh each time.
  const startup = async (file: string) => {
    const samples: number[] = []
    for (let i = 0; i < 30; i++) {
      const start = performance.now()
      await import(`${file}?run=${i}`)
      samples.push(performance.now() - start)
    }
    return median(samples)
  }
  const workerStart = await startup(join(out, 'worker.js'))
  const bareStart = await startup(bareOut)
  add({
    id: 'startup',
    label: 'module start-up (evaluate bundle, Node)',
    value: workerStart,
    unit: 'ms',
    baseline: { label: 'bare Hono worker', value: bareStart },
  })
}

async function requestFigures() {
  const env = { APP_ENV: 'development', LOG_LEVEL: 'error' }
  const app = createApp()
  const bare = new Hono().get('/health', (c) => c.json({ status: 'pass' }))
  const request = () => new Request('http://bench.local/health')
  const ctx = { waitUntil: () => {}, passThroughOnException: () => {}, props: {} }

  const { subject, baseline } = await cpuPerRequest({
    subject: () => app.fetch(request(), env, ctx),
    baseline: () => bare.fetch(request()),
  })
  add({
    id: 'cpu.health',
    label: 'CPU per request, GET /health (full chain)',
    value: subject,
    unit: 'µs',
    baseline: { label: 'bare Hono route', value: baseline },
  })
}

async function main() {
  const work = await mkdtemp(join(tmpdir(), 'agent-api-bench-'))
  try {
    if (!json) console.log(`Agent API bench — ${machine()}\n`)
    await bundleFigures(work)
    await requestFigures()
  } finally {
    await rm(work, { recursive: true, force: true })
  }
  if (json) {
    console.log(
      JSON.stringify({ machine: machine(), date: new Date().toISOString(), figures }, null, 2),
    )
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
