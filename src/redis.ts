// Upstash Redis over REST, namespaced by the configured key prefix, with a timeout on every
// request and no client-side retries (the breaker and the callers decide what a failure means).
import { Redis } from '@upstash/redis/cloudflare'
import type { RedisConfig } from './config/index.ts'
import type { EventBus } from './events.ts'
import type { Trace } from './trace.ts'

export interface RedisStore {
  readonly client: Redis
  /** A key in this deployment's namespace, e.g. key('revoked', jti). */
  key(...parts: string[]): string
  /** Runs Redis work, timed into the request's trace and reported as an upstream call. */
  run<T>(operation: string, work: (client: Redis) => Promise<T>, trace?: Trace): Promise<T>
}

export function createRedisStore(options: {
  config: RedisConfig
  keyPrefix: string
  timeoutMs: number
  events?: EventBus
}): RedisStore {
  const client = new Redis(
    {
      url: options.config.url,
      token: options.config.token.reveal(),
      retry: { retries: 0 }, // `false` still retries once after a network error
      signal: () => AbortSignal.timeout(options.timeoutMs),
      automaticDeserialization: false,
      enableTelemetry: false,
    },
    { UPSTASH_DISABLE_TELEMETRY: '1' },
  )
  return {
    client,
    key: (...parts) => options.keyPrefix + parts.join(':'),
    async run(operation, work, trace) {
      const start = performance.now()
      let ok = false
      try {
        const result = await work(client)
        ok = true
        return result
      } finally {
        const durationMs = performance.now() - start
        trace?.add('redis', durationMs)
        options.events?.emit({
          type: 'upstream.call',
          upstream: 'redis',
          operation,
          ok,
          durationMs,
        })
      }
    },
  }
}
