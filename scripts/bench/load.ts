// HTTP load through workerd: the bundled worker and a bare Hono worker, each served by
// Miniflare, driven by autocannon with the same connections and duration. Also reads each
// workerd process's CPU time from /proc, for CPU per request inside the real runtime.
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import autocannon from 'autocannon'
import * as esbuild from 'esbuild'
import { convertV4MiniflareOptions, Log, LogLevel, Miniflare } from 'miniflare'
import { buildBareWorker, compatibilityDate, workerBuildOptions } from '../../local/worker-build.ts'

export interface LoadResult {
  id: string
  label: string
  rps: number
  p99: number
  non2xx: number
  /** CPU the workerd process spent per request (from /proc), or null where unreadable. */
  workerdCpuUs: number | null
}

/** Our workerd children (Miniflare spawns workerd directly). */
async function workerdChildren(): Promise<Set<number>> {
  const pids = new Set<number>()
  for (const entry of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry)) continue
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '')
    const match = /^\d+ \((.*)\) \S (\d+)/.exec(stat)
    if (match && match[1] === 'workerd' && Number(match[2]) === process.pid) pids.add(Number(entry))
  }
  return pids
}

/** utime + stime of a process, in microseconds (clock ticks are 1/100 s on Linux). */
async function cpuMicros(pid: number): Promise<number | null> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null)
  if (!stat) return null
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 10_000
}

interface Served {
  url: string
  mf: Miniflare
  pid: number | null
}

async function serve(scriptPath: string, bindings: Record<string, string>): Promise<Served> {
  const before = await workerdChildren()
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      modules: true,
      scriptPath,
      compatibilityDate: await compatibilityDate(),
      bindings,
      host: '127.0.0.1',
      port: 0,
      cf: false,
      log: new Log(LogLevel.ERROR),
    }),
  )
  const url = await mf.ready
  const started = [...(await workerdChildren())].filter((pid) => !before.has(pid))
  return { url: url.origin, mf, pid: started.length === 1 ? started[0]! : null }
}

async function run(
  opts: autocannon.Options,
  pid: number | null,
): Promise<Omit<LoadResult, 'id' | 'label'>> {
  const cpuBefore = pid === null ? null : await cpuMicros(pid)
  const result = await autocannon(opts)
  const cpuAfter = pid === null ? null : await cpuMicros(pid)
  const workerdCpuUs =
    cpuBefore === null || cpuAfter === null || result.requests.total === 0
      ? null
      : (cpuAfter - cpuBefore) / result.requests.total
  return {
    rps: result.requests.average,
    p99: result.latency.p99,
    non2xx: result.non2xx + result.errors,
    workerdCpuUs,
  }
}

export async function httpLoad(options: {
  root: string
  work: string
  env: Record<string, string>
  seconds: number
  connections: number
}): Promise<{ bare: LoadResult; routes: LoadResult[] }> {
  // Inside the project: workerd refuses module paths that climb out of its working directory.
  const dir = join(options.root, '.wrangler/bench')
  const appScript = join(dir, 'load-worker.mjs')
  await esbuild.build({ ...workerBuildOptions(appScript), minify: true, sourcemap: false })
  const bareScript = join(dir, 'load-bare.mjs')
  await buildBareWorker(join(options.work, 'load-bare.ts'), bareScript)

  const app = await serve(appScript, options.env)
  const bare = await serve(bareScript, {})
  try {
    const token = await fetch(`${app.url}/api/v1/agent/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ agent_id: 'demo-agent', agent_secret: options.env.DEV_AGENT_SECRET }),
    })
    const { access_token } = (await token.json()) as { access_token: string }
    const auth = { authorization: `Bearer ${access_token}` }
    const context = `${app.url}/api/v1/agent/users/demo-user-1/context`
    for (let i = 0; i < 3; i++) await (await fetch(context, { headers: auth })).arrayBuffer()

    // The progress route warmed up the same way (its grant and dedupe caches), for each user.
    for (const user of ['demo-user-1', 'demo-user-2']) {
      const res = await fetch(`${app.url}/api/v1/agent/progress`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify({
          user_id: user,
          task_id: 'load-warm-up',
          status: 'in_progress',
          progress: 1,
          occurred_at: new Date(Date.now() - 1000).toISOString(),
          idempotency_key: `load-warm-up-${user}-${Date.now()}`,
        }),
      })
      if (res.status !== 202) throw new Error(`progress warm-up: ${res.status} ${await res.text()}`)
    }

    const common = { connections: options.connections, duration: options.seconds }
    const bareResult = await run({ ...common, url: `${bare.url}/bare` }, bare.pid)
    const hit = await run({ ...common, url: context, headers: auth }, app.pid)
    let n = 0
    const write = await run(
      {
        ...common,
        url: `${app.url}/api/v1/agent/progress`,
        requests: [
          {
            method: 'POST',
            headers: { ...auth, 'content-type': 'application/json' },
            setupRequest: (req) => ({
              ...req,
              body: JSON.stringify({
                user_id: n % 2 ? 'demo-user-1' : 'demo-user-2',
                task_id: `load-${n % 25}`,
                status: 'in_progress',
                progress: n % 101,
                occurred_at: new Date(Date.now() - 1000).toISOString(),
                idempotency_key: `load-${Date.now()}-${n++}`,
              }),
            }),
          },
        ],
      },
      app.pid,
    )
    return {
      bare: { id: 'bare', label: 'bare Hono route', ...bareResult },
      routes: [
        { id: 'context-hit', label: 'GET context (cache hit)', ...hit },
        { id: 'progress-write', label: 'POST progress (one update)', ...write },
      ],
    }
  } finally {
    await app.mf.dispose()
    await bare.mf.dispose()
  }
}
