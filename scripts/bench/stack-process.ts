// The local stack in its own process, so the bench's CPU figures count the app's work and
// not the stand-ins'. Prints one JSON line (the scenario's env and the control URL), then
// runs until its stdin closes.

import { POSTGRES_URL, postgresAvailable, REDIS_URL, redisAvailable } from '../../local/engines.ts'
import { startLocalStack } from '../../local/stack.ts'

const [hasPostgres, hasRedis] = await Promise.all([postgresAvailable(), redisAvailable()])
const stack = await startLocalStack({
  postgresUrl: hasPostgres ? POSTGRES_URL : undefined,
  redisUrl: hasRedis ? REDIS_URL : false,
})
const scenario = await stack.createScenario()
process.stdout.write(
  `${JSON.stringify({
    controlUrl: stack.info.controlUrl,
    scenarioId: scenario.id,
    postgres: stack.info.postgres,
    redis: hasRedis,
    env: {
      DATABASE_URL: scenario.databaseUrl,
      NEON_FETCH_ENDPOINT: scenario.neonFetchEndpoint,
      ...(scenario.upstashUrl && scenario.upstashToken
        ? {
            UPSTASH_REDIS_REST_URL: scenario.upstashUrl,
            UPSTASH_REDIS_REST_TOKEN: scenario.upstashToken,
          }
        : {}),
    },
  })}\n`,
)
process.stdin.resume()
process.stdin.on('end', async () => {
  await stack.close()
  process.exit(0)
})
