// HTTP load through workerd: the bundled worker and a bare Hono worker, driven by autocannon
// with the same connections and duration, each served twice: by Miniflare (as `npm run dev`
// serves it) and by workerd alone (as the edge runs it: no Miniflare entry worker in front of
// each request, no outbound-interceptor worker behind each subrequest). Also reads each
// workerd process's CPU time from /proc, for CPU per request inside the real runtime, and
// with `profile` takes a V8 CPU profile of the worker's isolate through workerd's inspector.
import { spawn } from 'node:child_process'
import { readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { createServer } from 'node:net'
import { basename, dirname, join } from 'node:path'
import autocannon from 'autocannon'
import * as esbuild from 'esbuild'
import { convertV4MiniflareOptions, Log, LogLevel, Miniflare } from 'miniflare'
import {
  BARE_REDIS_WORKER,
  buildBareWorker,
  compatibilityDate,
  workerBuildOptions,
} from '../../local/worker-build.ts'
import { type Frame, foldProfile, markAt, moduleMarks, type ProfileNode } from './explain.ts'

export interface LoadResult {
  id: string
  label: string
  rps: number
  p99: number
  non2xx: number
  /** CPU the workerd process spent per request (from /proc), or null where unreadable. */
  workerdCpuUs: number | null
  /** Redis requests per request (the stand-in's count), when a counter was given. */
  redisPerRequest: number | null
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
  pid: number | null
  close(): Promise<void>
}

export type Host = 'miniflare' | 'workerd'

/** The workerd binary Miniflare runs (the `workerd` package, pinned to Miniflare's). */
const WORKERD = (createRequire(import.meta.url)('workerd') as { default: string }).default

async function serveMiniflare(
  scriptPath: string,
  bindings: Record<string, string>,
): Promise<Served> {
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
  return {
    url: url.origin,
    pid: started.length === 1 ? started[0]! : null,
    close: () => mf.dispose(),
  }
}

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** A Cap'n Proto text literal (UTF-8; quotes, backslashes and control characters escaped). */
function capnpText(value: string): string {
  let literal = '"'
  for (const ch of value) {
    const code = ch.codePointAt(0)!
    if (ch === '"' || ch === '\\') literal += `\\${ch}`
    else if (code < 0x20 || code === 0x7f) literal += `\\x${code.toString(16).padStart(2, '0')}`
    else literal += ch
  }
  return `${literal}"`
}

/**
 * The worker served by workerd alone: one socket, one worker, its bindings as text, and
 * subrequests to any address (the stand-ins listen on loopback). `inspector`: a port for
 * workerd's inspector (profiles).
 */
async function serveWorkerd(
  scriptPath: string,
  bindings: Record<string, string>,
  inspector?: number,
): Promise<Served> {
  // A port found free may be taken before workerd binds it: then workerd exits, and another
  // port is tried.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startWorkerd(scriptPath, bindings, await freePort(), inspector)
    } catch (err) {
      if (attempt >= 3) throw err
    }
  }
}

async function startWorkerd(
  scriptPath: string,
  bindings: Record<string, string>,
  port: number,
  inspector?: number,
): Promise<Served> {
  const config = join(dirname(scriptPath), `${basename(scriptPath, '.mjs')}.capnp`)
  const textBindings = Object.entries(bindings)
    .map(([name, value]) => `(name = ${capnpText(name)}, text = ${capnpText(value)})`)
    .join(',\n      ')
  // The config holds the bindings (a Redis token among them): removed once workerd has read it.
  await writeFile(
    config,
    `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = (
      modules = [(name = "worker.mjs", esModule = embed ${capnpText(basename(scriptPath))})],
      compatibilityDate = ${capnpText(await compatibilityDate())},
      bindings = [
      ${textBindings}
      ],
      globalOutbound = "net",
    )),
    (name = "net", network = (allow = ["public", "private", "local"])),
  ],
  sockets = [(name = "http", address = ${capnpText(`127.0.0.1:${port}`)}, http = (), service = "main")],
);
`,
    { mode: 0o600 },
  )
  const args = [
    'serve',
    config,
    ...(inspector ? ['--inspector-addr', `127.0.0.1:${inspector}`] : []),
  ]
  const child = spawn(WORKERD, args, { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString()
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const close = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill()
    await exited
  }
  const url = `http://127.0.0.1:${port}`
  try {
    for (let i = 0; ; i++) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`workerd exited: ${stderr}`)
      }
      const up = await fetch(url, { method: 'HEAD' }).then(
        () => true,
        () => false,
      )
      if (up) break
      if (i > 400) throw new Error(`workerd did not start within 20 s: ${stderr}`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  } catch (err) {
    await close()
    throw err
  } finally {
    await rm(config, { force: true })
  }
  return { url, pid: child.pid ?? null, close }
}

function serve(host: Host, scriptPath: string, bindings: Record<string, string>) {
  return host === 'miniflare'
    ? serveMiniflare(scriptPath, bindings)
    : serveWorkerd(scriptPath, bindings)
}

/**
 * A V8 CPU profile (100 µs sampling) of the worker's isolate while `work` runs, taken over the
 * Chrome DevTools protocol from workerd's inspector at `port`.
 */
async function profileIsolate(
  port: number,
  work: () => Promise<unknown>,
): Promise<{ nodes: ProfileNode[] }> {
  const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as {
    id: string
    webSocketDebuggerUrl: string
  }[]
  const target = targets.find((t) => t.id === 'main') ?? targets[0]
  if (!target) throw new Error('workerd inspector lists no worker')
  const socket = new WebSocket(target.webSocketDebuggerUrl)
  await new Promise((resolve, reject) => {
    socket.onopen = resolve
    socket.onerror = reject
  })
  let id = 0
  const waiting = new Map<number, (message: { result?: unknown; error?: unknown }) => void>()
  socket.onmessage = (event) => {
    const message = JSON.parse(String(event.data)) as { id?: number; result?: unknown }
    if (message.id !== undefined) waiting.get(message.id)?.(message)
  }
  const send = (method: string, params: object = {}) =>
    new Promise<unknown>((resolve, reject) => {
      const n = ++id
      waiting.set(n, (m) =>
        m.error ? reject(new Error(JSON.stringify(m.error))) : resolve(m.result),
      )
      socket.send(JSON.stringify({ id: n, method, params }))
    })
  try {
    await send('Profiler.enable')
    await send('Profiler.setSamplingInterval', { interval: 100 })
    await send('Profiler.start')
    await work()
    return ((await send('Profiler.stop')) as { profile: { nodes: ProfileNode[] } }).profile
  } finally {
    socket.close()
  }
}

async function run(
  opts: autocannon.Options,
  pid: number | null,
  redisRequests?: () => Promise<number>,
): Promise<Omit<LoadResult, 'id' | 'label'>> {
  const redisBefore = await redisRequests?.()
  const cpuBefore = pid === null ? null : await cpuMicros(pid)
  const result = await autocannon(opts)
  const cpuAfter = pid === null ? null : await cpuMicros(pid)
  const redisAfter = await redisRequests?.()
  const workerdCpuUs =
    cpuBefore === null || cpuAfter === null || result.requests.total === 0
      ? null
      : (cpuAfter - cpuBefore) / result.requests.total
  return {
    rps: result.requests.average,
    p99: result.latency.p99,
    non2xx: result.non2xx + result.errors,
    workerdCpuUs,
    redisPerRequest:
      redisBefore === undefined || redisAfter === undefined || result.requests.total === 0
        ? null
        : (redisAfter - redisBefore) / result.requests.total,
  }
}

export interface HostResults {
  host: Host
  bare: LoadResult
  /** The progress write's floor: a bare worker writing the same body to Redis (one call). */
  bareWrite: LoadResult
  routes: LoadResult[]
}

/** The measured routes, each as autocannon options (the progress body differs per request). */
function routes(url: string, auth: Record<string, string>) {
  let n = 0
  return [
    {
      id: 'context-hit',
      label: 'GET context (cache hit)',
      opts: { url: `${url}/api/v1/agent/users/demo-user-1/context`, headers: auth },
    },
    {
      id: 'progress-write',
      label: 'POST progress (one update)',
      opts: {
        url: `${url}/api/v1/agent/progress`,
        requests: [
          {
            method: 'POST' as const,
            headers: { ...auth, 'content-type': 'application/json' },
            setupRequest: (req: autocannon.Request) => ({
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
    },
  ]
}

/** A token, then the context cache and the progress route warmed (grants, dedupe caches). */
async function warmUp(url: string, env: Record<string, string>): Promise<Record<string, string>> {
  const token = await fetch(`${url}/api/v1/agent/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ agent_id: 'demo-agent', agent_secret: env.DEV_AGENT_SECRET }),
  })
  const { access_token } = (await token.json()) as { access_token: string }
  const auth = { authorization: `Bearer ${access_token}` }
  const context = `${url}/api/v1/agent/users/demo-user-1/context`
  for (let i = 0; i < 3; i++) await (await fetch(context, { headers: auth })).arrayBuffer()
  for (const user of ['demo-user-1', 'demo-user-2']) {
    const res = await fetch(`${url}/api/v1/agent/progress`, {
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
  return auth
}

export async function httpLoad(options: {
  root: string
  work: string
  env: Record<string, string>
  seconds: number
  connections: number
  /** Also profile each route in workerd alone (its isolate, by package and frame). */
  profile?: boolean
  /** Reads how many requests the Redis stand-in has served (for Redis calls per request). */
  redisRequests?: () => Promise<number>
}): Promise<{
  hosts: HostResults[]
  profiles: { label: string; frames: Frame[]; byPackage: Frame[] }[]
}> {
  // Inside the project: workerd refuses module paths that climb out of its working directory.
  const dir = join(options.root, '.wrangler/bench')
  const appScript = join(dir, 'load-worker.mjs')
  await esbuild.build({ ...workerBuildOptions(appScript), minify: true, sourcemap: false })
  const bareScript = join(dir, 'load-bare.mjs')
  await buildBareWorker(join(options.work, 'load-bare.ts'), bareScript)
  const bareWriteScript = join(dir, 'load-bare-write.mjs')
  await buildBareWorker(
    join(options.work, 'load-bare-write.ts'),
    bareWriteScript,
    BARE_REDIS_WORKER,
  )
  const redis = {
    UPSTASH_REDIS_REST_URL: options.env.UPSTASH_REDIS_REST_URL ?? '',
    UPSTASH_REDIS_REST_TOKEN: options.env.UPSTASH_REDIS_REST_TOKEN ?? '',
  }
  const common = { connections: options.connections, duration: options.seconds }

  const hosts: HostResults[] = []
  for (const host of ['miniflare', 'workerd'] as const) {
    const servers: Served[] = []
    const started = async (served: Promise<Served>) => {
      servers.push(await served)
      return servers.at(-1)!
    }
    try {
      const app = await started(serve(host, appScript, options.env))
      const bare = await started(serve(host, bareScript, {}))
      const bareWrite = await started(serve(host, bareWriteScript, redis))
      const auth = await warmUp(app.url, options.env)
      const bareResult = await run({ ...common, url: `${bare.url}/bare` }, bare.pid)
      const write = routes(bareWrite.url, {}).find((r) => r.id === 'progress-write')!
      const bareWriteResult = await run({ ...common, ...write.opts }, bareWrite.pid)
      const measured: LoadResult[] = []
      for (const route of routes(app.url, auth)) {
        measured.push({
          id: route.id,
          label: route.label,
          ...(await run({ ...common, ...route.opts }, app.pid, options.redisRequests)),
        })
      }
      hosts.push({
        host,
        bare: { id: 'bare', label: 'bare Hono route', ...bareResult },
        bareWrite: {
          id: 'bare-write',
          label: 'bare Hono route writing the body to Redis (one REST call)',
          ...bareWriteResult,
        },
        routes: measured,
      })
    } finally {
      for (const server of servers) await server.close()
    }
  }

  const profiles: { label: string; frames: Frame[]; byPackage: Frame[] }[] = []
  if (options.profile) {
    // Unminified, so that each sample names its package (esbuild's `// path` marks).
    const readable = join(dir, 'load-readable.mjs')
    await esbuild.build({ ...workerBuildOptions(readable), minify: false, sourcemap: false })
    const marks = (await moduleMarks([readable])).get(readable)!
    const locate = (url: string, line: number) =>
      url.endsWith('worker.mjs') ? markAt(marks, line) : undefined
    const inspector = await freePort()
    const app = await serveWorkerd(readable, options.env, inspector)
    try {
      const auth = await warmUp(app.url, options.env)
      for (const route of routes(app.url, auth)) {
        const profile = await profileIsolate(inspector, () =>
          autocannon({ ...common, duration: 3, ...route.opts }),
        )
        profiles.push({
          label: `${route.label}, workerd alone (the worker's isolate)`,
          frames: foldProfile(profile, { locate }),
          byPackage: foldProfile(profile, { locate, byPackage: true }),
        })
      }
    } finally {
      await app.close()
    }
  }
  return { hosts, profiles }
}
