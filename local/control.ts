// The stack's control plane over HTTP, for tests that run inside workerd or the edge VM and
// cannot reach Node objects: scenarios (schema + proxies), their fault plans and counters.
//
//   POST   /scenarios                         → ScenarioResources
//   DELETE /scenarios/:id
//   PUT    /scenarios/:id/faults/:upstream    body: FaultPlan
//   DELETE /scenarios/:id/faults/:upstream
//   GET    /scenarios/:id/stats/:upstream     → StandinStats
//   POST   /scenarios/:id/stats/:upstream/reset
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { FaultInjector, FaultPlan } from './faults.ts'

/** What a test scenario gets: its own schema and its own fault-injecting proxies. */
export interface ScenarioResources {
  id: string
  schema: string
  databaseUrl: string
  neonFetchEndpoint: string
  upstashUrl?: string
  upstashToken?: string
}

export interface ControlServer {
  url: string
  close(): Promise<void>
}

export interface ControlOptions {
  port?: number
  createScenario(): Promise<ScenarioResources>
  closeScenario(id: string): Promise<void>
  faults(id: string, upstream: string): FaultInjector | undefined
}

const PLAN_KEYS = new Set(['latencyMs', 'errorRate', 'hang', 'refuse'])

export async function startControlServer(options: ControlOptions): Promise<ControlServer> {
  const server = createServer((req, res) => {
    route(req, res, options).catch((err: unknown) => {
      send(res, 500, { error: err instanceof Error ? err.message : String(err) })
    })
  })
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

async function route(req: IncomingMessage, res: ServerResponse, options: ControlOptions) {
  const url = new URL(req.url ?? '/', 'http://control')
  const [resource, id, kind, upstream, action] = url.pathname.split('/').filter(Boolean)
  if (resource !== 'scenarios') return send(res, 404, { error: 'no such control route' })

  if (!id && req.method === 'POST') return send(res, 201, await options.createScenario())
  if (id && !kind && req.method === 'DELETE') {
    await options.closeScenario(id)
    return send(res, 204)
  }

  const faults = id && upstream ? options.faults(id, upstream) : undefined
  if (!faults) return send(res, 404, { error: `no upstream ${upstream} in scenario ${id}` })

  if (kind === 'faults' && req.method === 'PUT') {
    const plan = JSON.parse((await readBody(req)) || '{}') as Record<string, unknown>
    const unknown = Object.keys(plan).filter((k) => !PLAN_KEYS.has(k))
    if (unknown.length)
      return send(res, 400, { error: `unknown fault keys: ${unknown.join(', ')}` })
    await faults.set(plan as FaultPlan)
    return send(res, 204)
  }
  if (kind === 'faults' && req.method === 'DELETE') {
    await faults.reset()
    return send(res, 204)
  }
  if (kind === 'stats' && req.method === 'GET') return send(res, 200, faults.stats)
  if (kind === 'stats' && req.method === 'POST' && action === 'reset') {
    faults.resetStats()
    return send(res, 204)
  }
  send(res, 404, { error: 'no such control route' })
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    req.on('error', reject)
  })
}

function send(res: ServerResponse, status: number, body?: unknown) {
  if (body === undefined) {
    res.writeHead(status).end()
    return
  }
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body))
}
