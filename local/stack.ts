// The local stack shared by `npm run dev`, the tests and the bench: a real PostgreSQL (or
// PGlite) behind the Neon HTTP stand-in, a real Redis behind the Upstash REST stand-in, and
// a control server through which code running inside workerd or the edge VM creates
// isolated schemas, injects faults and reads request counts.
import { randomBytes } from 'node:crypto'
import { createDatabase } from '../src/db/client.ts'
import { migrate } from '../src/db/migrate.ts'
import { seedDemoData } from '../src/db/seed.ts'
import { Secret } from '../src/kernel/secret.ts'
import { type ControlServer, type ScenarioResources, startControlServer } from './control.ts'
import { type FaultProxy, startFaultProxy } from './fault-proxy.ts'
import { loadMigrations } from './migrations.ts'
import { type NeonHttpStandin, startNeonHttpStandin } from './neon-http.ts'
import { connectPostgres, type PostgresUpstream } from './postgres.ts'
import { startUpstashRestStandin, type UpstashRestStandin } from './upstash-rest.ts'

/** Every local "Neon endpoint" serves SQL over HTTP at its own host and port. */
export type { ScenarioResources }

export const NEON_ENDPOINT_TEMPLATE = 'http://{host}:{port}/sql'

// Injected errors look like each upstream's own outage answers.
const NEON_INJECTED_ERROR = {
  status: 503,
  contentType: 'text/plain',
  body: 'injected fault: database unavailable',
}
const UPSTASH_INJECTED_ERROR = {
  status: 503,
  contentType: 'application/json',
  body: JSON.stringify({ error: 'ERR service unavailable (injected fault)' }),
}

export interface StackOptions {
  /** A PostgreSQL server to use; when unreachable (or omitted), PGlite stands in. */
  postgresUrl?: string
  /** `postgresUrl` must answer: fail with PostgresUnreachableError instead of using PGlite. */
  requirePostgres?: boolean
  /** Where PGlite keeps its files; in memory when omitted. */
  pgliteDataDir?: string
  /** Redis behind the Upstash stand-in; false runs without Redis. */
  redisUrl?: string | false
  /** Start the Upstash stand-in even if Redis does not answer yet; it connects when it does. */
  redisLazy?: boolean
  neonPort?: number
  upstashPort?: number
  controlPort?: number
  /** Apply migrations and the demo seed to the default schema (dev). */
  prepareDefaultSchema?: boolean
}

export interface StackInfo {
  neonFetchEndpoint: string
  databaseUrl: string
  upstashUrl?: string
  upstashToken?: string
  controlUrl: string
  postgres: 'server' | 'pglite'
}

export interface LocalStack {
  info: StackInfo
  postgres: PostgresUpstream
  neon: NeonHttpStandin
  upstash?: UpstashRestStandin
  control: ControlServer
  /** A fresh schema with migrations and demo data; returns its connection string. */
  createSchema(): Promise<{ schema: string; databaseUrl: string }>
  dropSchema(schema: string): Promise<void>
  /** A schema plus per-scenario proxies whose faults affect this scenario only. */
  createScenario(): Promise<ScenarioResources>
  close(): Promise<void>
}

export async function startLocalStack(options: StackOptions = {}): Promise<LocalStack> {
  const postgres = await connectPostgres({
    url: options.postgresUrl,
    pgliteDataDir: options.pgliteDataDir,
    required: options.requirePostgres,
  })
  const neon = await startNeonHttpStandin({ upstream: postgres, port: options.neonPort })
  let upstash: UpstashRestStandin | undefined
  if (options.redisUrl) {
    upstash = await startUpstashRestStandin({
      redisUrl: options.redisUrl,
      port: options.upstashPort,
      lazy: options.redisLazy,
    })
  }
  const migrations = await loadMigrations()

  const databaseFor = (databaseUrl: string) =>
    createDatabase({
      url: new Secret(databaseUrl),
      fetchEndpoint: NEON_ENDPOINT_TEMPLATE,
      timeoutMs: 60_000,
    })

  const prepare = async (databaseUrl: string) => {
    const db = databaseFor(databaseUrl)
    await migrate(db, migrations)
    await seedDemoData(db)
  }

  const admin = databaseFor(neon.connectionString())
  const createSchema = async () => {
    const schema = `t_${randomBytes(6).toString('hex')}`
    await admin.query({ text: `CREATE SCHEMA ${schema}`, params: [] })
    const databaseUrl = neon.connectionString({ searchPath: schema })
    await prepare(databaseUrl)
    return { schema, databaseUrl }
  }
  const dropSchema = async (schema: string) => {
    if (!/^t_[0-9a-f]{12}$/.test(schema)) throw new Error('not a test schema')
    await admin.query({ text: `DROP SCHEMA IF EXISTS ${schema} CASCADE`, params: [] })
  }

  if (options.prepareDefaultSchema) await prepare(neon.connectionString())

  const scenarios = new Map<string, { schema: string; proxies: Record<string, FaultProxy> }>()
  const createScenario = async (): Promise<ScenarioResources> => {
    const { schema, databaseUrl } = await createSchema()
    const proxies: Record<string, FaultProxy> = {
      neon: await startFaultProxy({
        target: new URL(neon.url).origin,
        injectedError: NEON_INJECTED_ERROR,
      }),
    }
    if (upstash) {
      proxies.redis = await startFaultProxy({
        target: upstash.url,
        injectedError: UPSTASH_INJECTED_ERROR,
      })
    }
    const id = schema
    scenarios.set(id, { schema, proxies })
    // The scenario's connection string names its own proxy as the "Neon endpoint host", so
    // the endpoint template sends its queries through that proxy (and its fault plan).
    const viaProxy = new URL(databaseUrl)
    viaProxy.host = new URL(proxies.neon!.url).host
    return {
      id,
      schema,
      databaseUrl: viaProxy.toString(),
      neonFetchEndpoint: NEON_ENDPOINT_TEMPLATE,
      upstashUrl: proxies.redis?.url,
      upstashToken: upstash?.token,
    }
  }
  const closeScenario = async (id: string) => {
    const scenario = scenarios.get(id)
    if (!scenario) return
    scenarios.delete(id)
    await Promise.all(Object.values(scenario.proxies).map((p) => p.close()))
    await dropSchema(scenario.schema)
  }

  const control = await startControlServer({
    port: options.controlPort,
    createScenario,
    closeScenario,
    faults: (id, name) => scenarios.get(id)?.proxies[name]?.faults,
  })

  const info: StackInfo = {
    neonFetchEndpoint: NEON_ENDPOINT_TEMPLATE,
    databaseUrl: neon.connectionString(),
    upstashUrl: upstash?.url,
    upstashToken: upstash?.token,
    controlUrl: control.url,
    postgres: postgres.singleConnection ? 'pglite' : 'server',
  }

  return {
    info,
    postgres,
    neon,
    upstash,
    control,
    createSchema,
    dropSchema,
    createScenario,
    async close() {
      await control.close()
      await Promise.all([...scenarios.keys()].map(closeScenario))
      await upstash?.close()
      await neon.close()
      await postgres.close()
    },
  }
}
