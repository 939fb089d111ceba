// An HTTP proxy with its own fault plan in front of a shared stand-in. Each test scenario
// gets one per upstream, so a scenario that makes "Neon" hang or refuse does not disturb the
// scenarios running beside it, and each counts its own requests. Node-only.
import {
  createServer,
  request as forward,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http'
import type { AddressInfo } from 'node:net'
import { bindRefusal, FaultInjector, sleep } from './faults.ts'

export interface FaultProxy {
  /** http://127.0.0.1:PORT — same paths as the target. */
  url: string
  faults: FaultInjector
  close(): Promise<void>
}

export interface FaultProxyOptions {
  /** Origin of the stand-in to forward to, e.g. http://127.0.0.1:4444. */
  target: string
  /** What an injected error looks like on this upstream's wire. */
  injectedError: { status: number; contentType: string; body: string }
}

export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const faults = new FaultInjector()
  const target = new URL(options.target)
  const hung = new Set<ServerResponse>()

  const server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy())
  })

  async function handle(req: IncomingMessage, res: ServerResponse) {
    // Read in full first: an upstream that is merely slow has received the request and runs
    // it even after the client stops waiting (the ambiguous timeout clients must survive).
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const body = Buffer.concat(chunks)
    const decision = faults.decide()
    if (decision.kind === 'hang') {
      hung.add(res)
      faults.park(() => {
        hung.delete(res)
        res.destroy()
      })
      return
    }
    await sleep(decision.delayMs)
    if (decision.kind === 'error') {
      const { status, contentType, body } = options.injectedError
      res.writeHead(status, { 'content-type': contentType }).end(body)
      return
    }
    faults.stats.executed++
    const upstream = forward(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: target.host },
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers)
        answer.pipe(res)
      },
    )
    upstream.on('error', () => res.destroy())
    upstream.end(body)
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  const unbind = bindRefusal(server, faults, '127.0.0.1', port)

  return {
    url: `http://127.0.0.1:${port}`,
    faults,
    close: async () => {
      unbind()
      faults.releaseHanging()
      for (const res of hung) res.destroy()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
