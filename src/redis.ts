// Upstash Redis over REST, namespaced by the configured key prefix, with a timeout on every
// request and no client-side retries (the breaker and the callers decide what a failure means).
import { Redis } from '@upstash/redis/cloudflare'
import type { RedisConfig } from './config/index.ts'
import type { EventBus } from './kernel/events.ts'
import type { CallScope } from './kernel/scope.ts'
import type { CircuitBreakerPolicy } from './resilience/policy.ts'

export interface RedisStore {
  readonly client: Redis
  /**
   * A key in this deployment's namespace: the parts joined with ':', each escaped by
   * `keyPart` first, e.g. key('progress', 'idem', agentId, idempotencyKey).
   */
  key(...parts: string[]): string
  /**
   * Runs Redis work through the Redis breaker (so an outage fails fast instead of waiting out
   * a timeout per call), timed into the request's trace and reported as an upstream call.
   */
  run<T>(operation: string, work: (client: Redis) => Promise<T>, scope?: CallScope): Promise<T>
}

export function createRedisStore(options: {
  config: RedisConfig
  keyPrefix: string
  timeoutMs: number
  events?: EventBus
  breaker?: CircuitBreakerPolicy
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
    key: (...parts) => options.keyPrefix + parts.map(keyPart).join(':'),
    async run(operation, work, scope) {
      const start = performance.now()
      let ok = false
      const { breaker } = options
      try {
        const result = breaker
          ? await breaker.execute(() => work(client), { isFailure: isRedisOutage })
          : await work(client)
        ok = true
        return result
      } catch (err) {
        // Redis answering about a command (a wrong type, a script error on bad data) is not a
        // failing upstream: it never counts as one (and never trips the breaker: isFailure).
        ok = !isRedisOutage(err)
        throw err
      } finally {
        const durationMs = performance.now() - start
        scope?.trace?.add('redis', durationMs)
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

/**
 * One part of a Redis key, escaped so that it cannot contain the ':' that separates parts:
 * '%' → '%25', ':' → '%3A'. Agent ids and idempotency keys may contain ':', and unescaped
 * `progress:idem:<agent>:<key>` made agent `a:2` with key `K` the same key as agent `a` with
 * key `2:K`. Escaped, distinct tuples of parts give distinct keys (the escaping decodes
 * uniquely); a part with neither character is unchanged, so existing keys keep their names.
 */
export function keyPart(part: string): string {
  return part.replace(/[%:]/g, (c) => (c === '%' ? '%25' : '%3A'))
}

/**
 * Whether a Redis error means Redis (or the way to it) is failing. Errors Redis itself
 * answered about a command (wrong type, missing script, bad arguments) are the caller's.
 */
export function isRedisOutage(err: unknown): boolean {
  if (!(err instanceof Error)) return true
  if (err.name === 'TimeoutError' || err.name === 'AbortError') return true
  const text = err.message.replace(/^Command failed: /, '')
  return !/^(WRONGTYPE|NOSCRIPT|EXECABORT|ERR (?!service unavailable))/.test(text)
}
