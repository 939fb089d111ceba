// Starts the local stack once for the whole run: the Neon and Upstash stand-ins in front of
// the real PostgreSQL and Redis (PGlite where no server runs), plus the control server.
// Every test file then creates its own schema and Redis key prefix through it.
import type { TestProject } from 'vitest/node'
import { POSTGRES_URL, postgresAvailable, REDIS_URL, redisAvailable } from '../../local/engines.ts'
import { type StackInfo, startLocalStack } from '../../local/stack.ts'

declare module 'vitest' {
  export interface ProvidedContext {
    stack: StackInfo
  }
}

export default async function setup(project: TestProject) {
  const [hasPostgres, hasRedis] = await Promise.all([postgresAvailable(), redisAvailable()])
  const stack = await startLocalStack({
    postgresUrl: hasPostgres ? POSTGRES_URL : undefined,
    redisUrl: hasRedis ? REDIS_URL : false,
  })
  project.provide('stack', stack.info)
  return () => stack.close()
}
