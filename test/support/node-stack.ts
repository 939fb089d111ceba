// The local stack inside a Node test file, for tests that drive services directly (no HTTP):
// real PostgreSQL (or PGlite) and Redis behind the stand-ins, one schema per file.
import { afterAll, beforeAll } from 'vitest'
import { POSTGRES_URL, postgresAvailable, REDIS_URL, redisAvailable } from '../../local/engines.ts'
import { type LocalStack, type ScenarioResources, startLocalStack } from '../../local/stack.ts'
import { buildServices, type ServiceOptions, type Services } from '../../src/services.ts'

export interface NodeStack {
  stack: LocalStack
  resources: ScenarioResources
  hasRedis: boolean
  /** Services of one "isolate" over this file's schema and Redis prefix. */
  services(env?: Record<string, string>, options?: ServiceOptions): Services
}

export function useNodeStack(): () => NodeStack {
  let value: NodeStack | undefined
  beforeAll(async () => {
    const [hasPostgres, hasRedis] = await Promise.all([postgresAvailable(), redisAvailable()])
    const stack = await startLocalStack({
      postgresUrl: hasPostgres ? POSTGRES_URL : undefined,
      redisUrl: hasRedis ? REDIS_URL : false,
    })
    const resources = await stack.createScenario()
    const prefix = `t:${crypto.randomUUID().slice(0, 8)}:`
    value = {
      stack,
      resources,
      hasRedis,
      services: (env = {}, options = {}) =>
        buildServices(
          {
            APP_ENV: 'development',
            LOG_LEVEL: 'error',
            DATABASE_URL: resources.databaseUrl,
            NEON_FETCH_ENDPOINT: resources.neonFetchEndpoint,
            REDIS_KEY_PREFIX: prefix,
            ...(hasRedis && resources.upstashUrl && resources.upstashToken
              ? {
                  UPSTASH_REDIS_REST_URL: resources.upstashUrl,
                  UPSTASH_REDIS_REST_TOKEN: resources.upstashToken,
                }
              : {}),
            ...env,
          },
          options,
        ),
    }
  }, 120_000)
  afterAll(async () => {
    await value?.stack.close()
  })
  return () => {
    if (!value) throw new Error('the stack is not up yet')
    return value
  }
}
