// Upstash Redis over REST, namespaced by the configured key prefix, with a timeout on every
// request and no client-side retries (the breaker and the callers decide what a failure means).
import { Redis } from '@upstash/redis/cloudflare'
import type { RedisConfig } from './config/index.ts'
import { networkCode } from './kernel/errors.ts'
import type { EventBus } from './kernel/events.ts'
import type { CallScope } from './kernel/scope.ts'
import { type CircuitBreakerPolicy, CircuitOpenError } from './resilience/policy.ts'

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
 * The error reply Redis itself gave (`ERR …`, `WRONGTYPE …`, `NOSCRIPT …`), as @upstash/redis
 * relays it in an UpstashError's message, in any of its shapes: `<reply>, command was: …` (a
 * non-2xx answer whose JSON body had `error`), `Command failed: <reply>` (auto-pipelined),
 * `Command 2 [ GET ] failed: <reply>` (a pipeline), or the reply alone. Undefined when the
 * error is anything else — a timeout, a refused connection, or a non-2xx answer whose text is
 * not a Redis reply (a gateway's "Bad Gateway", a body without `error`: "undefined").
 */
export function redisErrorReply(err: unknown): string | undefined {
  if (!(err instanceof Error) || err.name !== 'UpstashError') return undefined
  const text = err.message
    .replace(/^Command (?:\d+ \[ [^\]]* \] )?failed: /, '')
    .split(', command was: ')[0]!
  return /^[A-Z][A-Z_]*[A-Z](?: |$)/.test(text) ? text : undefined
}

/**
 * Replies that say Redis (or Upstash in front of it) cannot serve now, whatever the command:
 * loading, busy, read-only, out of memory, misconfigured credentials, and Upstash's plan limits
 * (https://upstash.com/docs/redis/troubleshooting). Other replies are about the command.
 */
const UNAVAILABLE_REPLY =
  /^(LOADING|BUSY|MASTERDOWN|TRYAGAIN|CLUSTERDOWN|READONLY|OOM|MISCONF|NOAUTH|WRONGPASS|NOPERM)\b|^ERR (max daily request limit exceeded|max requests limit exceeded|max concurrent connections exceeded|DB capacity quota exceeded|service unavailable)/i

/** A script that failed while it ran: the writes it made before the error are kept. */
const SCRIPT_RUNTIME_ERROR = /user_script|Error running script|script: [0-9a-f]{40}/

/**
 * Whether a Redis error means Redis (or the way to it) is failing: a timeout, a refused or lost
 * connection, an open circuit, an answer that is not Redis's (a gateway's), or a reply that
 * says Redis cannot serve now (UNAVAILABLE_REPLY). A reply about the command itself (a wrong
 * type, a missing script, bad arguments, a request too large) is the caller's, not an outage.
 */
export function isRedisOutage(err: unknown): boolean {
  const reply = redisErrorReply(err)
  return reply === undefined || UNAVAILABLE_REPLY.test(reply)
}

/**
 * What a failed Redis command may have done, for a write's honest answer (CONTRACT.md `503`):
 * - `none`: certainly not applied — the circuit was open, the connection was refused, or Redis
 *   answered with an error reply (it refused the command, or could not serve);
 * - `unknown`: it may have been — a timeout, a lost connection, a script that failed while it
 *   ran, or an answer that is not Redis's (a gateway answering 5xx may have passed the command
 *   on before it failed: the client cannot tell, since it keeps no status, only the text).
 */
export function redisCommandOutcome(err: unknown): 'none' | 'unknown' {
  if (err instanceof CircuitOpenError) return 'none'
  const reply = redisErrorReply(err)
  if (reply !== undefined) return SCRIPT_RUNTIME_ERROR.test(reply) ? 'unknown' : 'none'
  return networkCode(err) === 'ECONNREFUSED' ? 'none' : 'unknown'
}
