// The worker as a developer runs it, for the e2e tests: the local stack (stand-ins in front of
// the real engines), the worker bundled and served by workerd, a fresh development secret.
import { LogLevel } from 'miniflare'
import { POSTGRES_URL, postgresAvailable, REDIS_URL, redisAvailable } from '../../local/engines.ts'
import { type LocalStack, startLocalStack } from '../../local/stack.ts'
import { startWorkerServer, type WorkerServer } from '../../local/worker-server.ts'

export interface E2eServer {
  server: WorkerServer
  /** The development agent secret the server was started with. */
  secret: string
  close(): Promise<void>
}

/** `name` keeps its bundle and Redis keys apart; `assets` is public/, prepared, when wanted. */
export async function startE2eServer(options: {
  name: string
  assets?: string
  logLevel: 'warn' | 'error'
}): Promise<E2eServer> {
  const secret = Array.from(crypto.getRandomValues(new Uint8Array(32)), (b) =>
    b.toString(16).padStart(2, '0'),
  ).join('')
  const [hasPostgres, hasRedis] = await Promise.all([postgresAvailable(), redisAvailable()])
  const stack: LocalStack = await startLocalStack({
    postgresUrl: hasPostgres ? POSTGRES_URL : undefined,
    redisUrl: hasRedis ? REDIS_URL : false,
  })
  const scenario = await stack.createScenario()
  const server = await startWorkerServer({
    outfile: new URL(`../../.wrangler/${options.name}/worker.mjs`, import.meta.url).pathname,
    ...(options.assets ? { assets: options.assets } : {}),
    logLevel: LogLevel.WARN, // no line per request
    bindings: {
      APP_ENV: 'development',
      DEV_AGENT_SECRET: secret,
      DEV_JWT_SECRET: `${secret}-jwt`,
      LOG_LEVEL: options.logLevel,
      DATABASE_URL: scenario.databaseUrl,
      NEON_FETCH_ENDPOINT: scenario.neonFetchEndpoint,
      REDIS_KEY_PREFIX: `${options.name}:${secret.slice(0, 8)}:`,
      ...(scenario.upstashUrl && scenario.upstashToken
        ? {
            UPSTASH_REDIS_REST_URL: scenario.upstashUrl,
            UPSTASH_REDIS_REST_TOKEN: scenario.upstashToken,
          }
        : {}),
    },
  })
  return {
    server,
    secret,
    async close() {
      await server.close()
      await stack.close()
    },
  }
}
