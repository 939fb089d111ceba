// The example agent against the dev stack over real HTTP: the worker bundled and served by
// workerd, the Neon and Upstash stand-ins in front of the real engines.
import { LogLevel } from 'miniflare'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { runExampleAgent } from '../../examples/agent.ts'
import { POSTGRES_URL, postgresAvailable, REDIS_URL, redisAvailable } from '../../local/engines.ts'
import { type LocalStack, startLocalStack } from '../../local/stack.ts'
import { startWorkerServer, type WorkerServer } from '../../local/worker-server.ts'

let stack: LocalStack
let server: WorkerServer
const secret = Array.from(crypto.getRandomValues(new Uint8Array(32)), (b) =>
  b.toString(16).padStart(2, '0'),
).join('')

beforeAll(async () => {
  const [hasPostgres, hasRedis] = await Promise.all([postgresAvailable(), redisAvailable()])
  stack = await startLocalStack({
    postgresUrl: hasPostgres ? POSTGRES_URL : undefined,
    redisUrl: hasRedis ? REDIS_URL : false,
  })
  const scenario = await stack.createScenario()
  server = await startWorkerServer({
    outfile: new URL('../../.wrangler/e2e/worker.mjs', import.meta.url).pathname,
    logLevel: LogLevel.WARN, // no line per request
    bindings: {
      APP_ENV: 'development',
      DEV_AGENT_SECRET: secret,
      DEV_JWT_SECRET: `${secret}-jwt`,
      LOG_LEVEL: 'warn',
      DATABASE_URL: scenario.databaseUrl,
      NEON_FETCH_ENDPOINT: scenario.neonFetchEndpoint,
      REDIS_KEY_PREFIX: `e2e:${secret.slice(0, 8)}:`,
      ...(scenario.upstashUrl && scenario.upstashToken
        ? {
            UPSTASH_REDIS_REST_URL: scenario.upstashUrl,
            UPSTASH_REDIS_REST_TOKEN: scenario.upstashToken,
          }
        : {}),
    },
  })
}, 120_000)

afterAll(async () => {
  await server?.close()
  await stack?.close()
})

test('the example agent gets a token, reads context, reports progress and checks health', async () => {
  const result = await runExampleAgent({ baseUrl: server.url, agentSecret: secret })
  expect(result.greeting).toBe('Ada Lovelace (Europe/Berlin) has 2 task(s) in progress')
  expect(result.progressBatch).toMatch(/^[0-9a-f-]{36}$/)
  expect(['queued', 'committed']).toContain(result.progressStatus)
  expect(result.health).toMatch(
    /^(healthy|degraded) \(database: pass, redis: (pass|warn), circuit_breakers: pass, token_manager: pass, configuration: (pass|warn)\)$/,
  )
})
