// Services of one "isolate" over a scenario of the shared local stack (its own schema, Redis
// key prefix and fault proxies), for integration tests that drive services without HTTP.
import { afterAll } from 'vitest'
import type { ScenarioResources } from '../../local/stack.ts'
import type { ProgressBuffer } from '../../src/progress/buffer.ts'
import type { BufferedUpdate } from '../../src/progress/model.ts'
import { buildServices, type ServiceOptions, type Services } from '../../src/services.ts'
import { control, stackInfo } from '../support/control.ts'

export interface IntegrationScenario {
  resources: ScenarioResources
  hasRedis: boolean
  prefix: string
  /** The env the services are built from (add overrides per call). */
  env(extra?: Record<string, string>): Record<string, string>
  services(extra?: Record<string, string>, options?: ServiceOptions): Services
  neon: ReturnType<typeof control.upstream>
  redis: ReturnType<typeof control.upstream>
}

/** Call at the top level of a test file (it registers an afterAll that cleans up). */
export async function integrationScenario(): Promise<IntegrationScenario> {
  const resources = await control.createScenario()
  afterAll(() => control.closeScenario(resources.id))
  const hasRedis = resources.upstashUrl !== undefined
  const prefix = `t:${crypto.randomUUID().slice(0, 8)}:`
  const env = (extra: Record<string, string> = {}) => ({
    APP_ENV: 'development',
    LOG_LEVEL: 'error',
    DATABASE_URL: resources.databaseUrl,
    NEON_FETCH_ENDPOINT: resources.neonFetchEndpoint,
    REDIS_KEY_PREFIX: prefix,
    ...(resources.upstashUrl && resources.upstashToken
      ? {
          UPSTASH_REDIS_REST_URL: resources.upstashUrl,
          UPSTASH_REDIS_REST_TOKEN: resources.upstashToken,
        }
      : {}),
    ...extra,
  })
  return {
    resources,
    hasRedis,
    prefix,
    env,
    services: (extra = {}, options = {}) => buildServices(env(extra), options),
    neon: control.upstream(resources.id, 'neon'),
    redis: control.upstream(resources.id, 'redis'),
  }
}

export { stackInfo }

let n = 0

/** An accepted update as the route builds it. */
export function item(over: Partial<BufferedUpdate> = {}): BufferedUpdate {
  n++
  return {
    id: crypto.randomUUID(),
    batchId: crypto.randomUUID(),
    agentId: 'demo-agent',
    idempotencyKey: `k-${n}-${crypto.randomUUID().slice(0, 8)}`,
    fingerprint: `f1:fp-${n}-${crypto.randomUUID()}`,
    userId: 'demo-user-1',
    taskId: `t-${n}-${crypto.randomUUID().slice(0, 8)}`,
    status: 'in_progress',
    progress: 10,
    data: null,
    occurredAt: new Date(Date.now() - 60_000).toISOString(),
    receivedAt: Date.now(),
    ...over,
  }
}

/** Where an item is in the buffer: exactly one place, or `gone` (acknowledged or discarded). */
export async function whereIs(
  services: Services,
  id: string,
): Promise<'ready' | 'processing' | 'dead' | 'gone' | `inconsistent: ${string}`> {
  const redis = services.redis!
  const k = (name: string) => redis.key('progress', name)
  const p = redis.client.pipeline()
  p.zscore(k('ready'), id)
  p.zscore(k('processing'), id)
  p.hexists(k('dead'), id)
  p.hexists(k('items'), id)
  const [ready, processing, dead, item] = (await p.exec()) as [unknown, unknown, number, number]
  const places = [
    ready !== null ? 'ready' : undefined,
    processing !== null ? 'processing' : undefined,
    dead ? 'dead' : undefined,
  ].filter((x): x is 'ready' | 'processing' | 'dead' => x !== undefined)
  if (places.length > 1) return `inconsistent: ${places.join('+')}`
  const place = places[0] ?? 'gone'
  // Queued or claimed items have their JSON in `items`; dead and gone ones do not.
  const wantItem = place === 'ready' || place === 'processing'
  if (Boolean(item) !== wantItem) return `inconsistent: ${place} with${item ? '' : 'out'} item`
  return place
}

/** Writes an item the way the version before storable input could have: any JSON text. */
export async function bufferRaw(
  services: Services,
  raw: { id: string; json: string; receivedAt: number },
): Promise<void> {
  const redis = services.redis!
  const p = redis.client.pipeline()
  p.hset(redis.key('progress', 'items'), { [raw.id]: raw.json })
  p.zadd(redis.key('progress', 'ready'), { score: raw.receivedAt, member: raw.id })
  await p.exec()
}

/** An item whose JSON Redis' cjson refuses (an unpaired surrogate escape in its task id). */
export function undecodable(batchId = crypto.randomUUID()) {
  const id = crypto.randomUUID()
  const receivedAt = Date.now() - 60_000
  const json = `{"id":"${id}","batchId":"${batchId}","agentId":"demo-agent","idempotencyKey":"legacy-${id}","userId":"demo-user-1","taskId":"t\\udfff","status":"in_progress","progress":10,"data":null,"occurredAt":"${new Date(receivedAt).toISOString()}","receivedAt":${receivedAt},"g":"demo-user-1/t"}`
  return { id, json, receivedAt, batchId }
}

export type { ProgressBuffer }
