// One cold request, in a fresh process: imports a worker module, then measures the CPU of its
// first request (the module's start-up is not counted). Input: one JSON argument
// { module, path, env, token, profile? }; prints { status, cpuUs, profile? } (the request's
// V8 CPU profile when asked, for `--explain`).
import { Session } from 'node:inspector/promises'
import process from 'node:process'

const input = JSON.parse(process.argv[2]!) as {
  module: string
  path: string
  env: Record<string, string>
  token: string
  profile?: boolean
}
// Node loads its fetch implementation (undici) on first use, tens of ms no edge runtime
// spends on a request: loaded before anything is measured, for both workers alike.
await (await fetch('data:,warm')).text()
const worker = (await import(input.module)).default as {
  fetch(request: Request, env: unknown, ctx: unknown): Response | Promise<Response>
}
const ctx = {
  waitUntil: (p: Promise<unknown>) => void p.catch(() => {}),
  passThroughOnException: () => {},
  props: {},
}
const session = input.profile ? new Session() : undefined
if (session) {
  session.connect()
  await session.post('Profiler.enable')
  await session.post('Profiler.setSamplingInterval', { interval: 100 })
  await session.post('Profiler.start')
}
const before = process.cpuUsage()
const response = await worker.fetch(
  new Request(`http://bench.local${input.path}`, {
    headers: { authorization: `Bearer ${input.token}` },
  }),
  input.env,
  ctx,
)
await response.arrayBuffer()
const used = process.cpuUsage(before)
const profile = session ? (await session.post('Profiler.stop')).profile : undefined
process.stdout.write(
  `${JSON.stringify({ status: response.status, cpuUs: used.user + used.system, profile })}\n`,
)
