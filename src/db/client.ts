// Postgres over Neon's HTTP endpoint. Every statement is parameterised (the `sql` tag makes
// that the easy path), every call has a timeout, and every call is observed.
import type { NeonQueryFunction } from '@neondatabase/serverless'
import type { EventBus } from '../kernel/events.ts'
import type { CallScope } from '../kernel/scope.ts'
import type { Secret } from '../kernel/secret.ts'
import { type CircuitBreakerPolicy, CircuitOpenError } from '../resilience/policy.ts'
import { type RetryOptions, retry } from '../resilience/retry.ts'

export interface SqlStatement {
  readonly text: string
  readonly params: readonly unknown[]
}

/** Tagged template that turns interpolations into $n parameters, never into SQL text. */
export function sql(strings: TemplateStringsArray, ...values: unknown[]): SqlStatement {
  let text = strings[0] ?? ''
  for (let i = 0; i < values.length; i++) text += `$${i + 1}${strings[i + 1] ?? ''}`
  return { text, params: values }
}

export interface CallOptions extends CallScope {
  /** Overrides the configured timeout (e.g. the health check's shorter one). */
  timeoutMs?: number
  /** A read that may safely run twice: retried with jitter within the retry budget. */
  idempotent?: boolean
  /**
   * A readiness probe: refused at once while the circuit is open (serving would fail then), but
   * never recorded by the breaker. Its deadline is its own, shorter than the configured
   * timeout, so its timing out says nothing the breaker should act on (a database answering in
   * 1.2 s is healthy for a 3 s timeout), and a probe must not take the breaker's half-open slot.
   */
  probe?: boolean
}

export interface TransactionOptions extends CallOptions {
  isolationLevel?: 'ReadCommitted' | 'RepeatableRead' | 'Serializable'
  readOnly?: boolean
}

export type Row = Record<string, unknown>

export interface Database {
  query<R = Row>(statement: SqlStatement, options?: CallOptions): Promise<R[]>
  /** All statements in one HTTP request and one transaction; rolled back on the first error. */
  transaction(statements: readonly SqlStatement[], options?: TransactionOptions): Promise<Row[][]>
}

export interface DatabaseOptions {
  url: Secret
  /**
   * Where SQL-over-HTTP requests go instead of Neon's endpoint, as a template in which
   * `{host}` and `{port}` stand for the connection string's (e.g. the local stand-in's
   * `http://{host}:{port}/sql`).
   */
  fetchEndpoint?: string
  timeoutMs: number
  events?: EventBus
  /** The Neon circuit breaker every call goes through. */
  breaker?: CircuitBreakerPolicy
  /** How idempotent reads are retried (attempts, backoff, budget). */
  retry?: Omit<RetryOptions, 'retryable'>
}

export function createDatabase(options: DatabaseOptions): Database {
  // The driver is loaded on the first query, not with the module: its one bundle carries a
  // whole node-postgres client that costs ~20 ms to evaluate, which a cold start that is
  // served from cache (or /health) should not pay. esbuild keeps a dynamic import lazy.
  // The query function is kept, never the promise of it: each request awaits only its own
  // import (Workers cancel what another request settles); requests racing the first query
  // each build one, and the last one kept serves the rest.
  let query: NeonQueryFunction<false, false> | undefined
  const driver = async () => {
    if (query) return query
    const { neon, neonConfig } = await import('@neondatabase/serverless')
    if (options.fetchEndpoint) {
      // The driver reads its endpoint from this global config at call time. A template that
      // depends only on each connection string's host and port keeps databases with
      // different connection strings apart in one isolate (as Neon's local-proxy recipe does).
      neonConfig.fetchEndpoint = endpointFromTemplate(options.fetchEndpoint)
    }
    query = neon(options.url.reveal(), { disableWarningInBrowsers: true })
    return query
  }

  // One attempt: its own timeout, through the breaker, timed and reported.
  const attempt = async <T>(
    operation: string,
    call: CallOptions | undefined,
    run: (signal: AbortSignal) => Promise<T>,
  ): Promise<T> => {
    const start = performance.now()
    let ok = false
    const once = () => {
      return run(AbortSignal.timeout(call?.timeoutMs ?? options.timeoutMs))
    }
    try {
      const { breaker } = options
      let result: T
      if (!breaker) result = await once()
      else if (call?.probe) {
        if (breaker.isOpen()) throw new CircuitOpenError(breaker.name, 0)
        result = await once()
      } else
        result = await breaker.execute(once, { isFailure: isDatabaseOutage, defer: call?.defer })
      ok = true
      return result
    } catch (err) {
      // A statement the database refused (bad input, a constraint) is not a failing upstream.
      ok = !isDatabaseOutage(err)
      throw err
    } finally {
      const durationMs = performance.now() - start
      call?.trace?.add('db', durationMs)
      options.events?.emit({ type: 'upstream.call', upstream: 'neon', operation, ok, durationMs })
    }
  }

  const observe = <T>(
    operation: string,
    call: CallOptions | undefined,
    run: (signal: AbortSignal) => Promise<T>,
  ): Promise<T> =>
    call?.idempotent && options.retry
      ? retry(() => attempt(operation, call, run), {
          ...options.retry,
          retryable: isDatabaseOutage,
        })
      : attempt(operation, call, run)

  return {
    query: <R = Row>(statement: SqlStatement, call?: CallOptions) =>
      observe('query', call, async (signal) => {
        const client = await driver()
        const rows = await client.query(statement.text, [...statement.params], {
          fetchOptions: { signal },
        })
        return rows as R[]
      }),
    transaction: (statements, call) =>
      observe('transaction', call, async (signal) => {
        const client = await driver()
        const results = await client.transaction(
          statements.map((s) => client.query(s.text, [...s.params])),
          {
            fetchOptions: { signal },
            ...(call?.isolationLevel ? { isolationLevel: call.isolationLevel } : {}),
            ...(call?.readOnly === undefined ? {} : { readOnly: call.readOnly }),
          },
        )
        return results as Row[][]
      }),
  }
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|\[?::1\]?)$/

export function endpointFromTemplate(template: string) {
  return (host: string, port: number | string): string => {
    const url = template.replaceAll('{host}', host).replaceAll('{port}', String(port || 443))
    // Plain http only to this machine: credentials travel in the request headers.
    if (url.startsWith('http://') && !LOOPBACK.test(new URL(url).hostname)) {
      throw new Error('refusing SQL over plain http to a remote host')
    }
    return url
  }
}

/**
 * SQLSTATEs that mean the database is unreachable, overloaded or briefly in the way of itself,
 * not that the statement is wrong: connection exceptions (08), insufficient resources (53),
 * operator intervention (57P: shutdown, cannot connect now; 57014: the statement timeout),
 * system errors (58), and the transaction rollbacks a retry resolves (40001 serialization
 * failure, 40P01 deadlock detected). Each was rolled back: nothing it wrote landed.
 */
const OUTAGE_SQLSTATE = /^(08|53|57P|57014$|58|40001$|40P01$)/

/**
 * Whether an error means Postgres (or the path to it) is failing, as opposed to a statement
 * the database rejected. Only the former counts against the circuit breaker.
 */
export function isDatabaseOutage(err: unknown): boolean {
  if (isNeonDbError(err)) {
    return typeof err.code !== 'string' || OUTAGE_SQLSTATE.test(err.code)
  }
  return true // aborts, timeouts, network failures
}

/** The SQLSTATE of a rejected statement, if any (e.g. "23505" unique violation). */
export function sqlState(err: unknown): string | undefined {
  return isNeonDbError(err) && typeof err.code === 'string' ? err.code : undefined
}

/** By name, not instanceof: the driver's module is loaded lazily (see createDatabase). */
function isNeonDbError(err: unknown): err is Error & { code?: unknown } {
  return err instanceof Error && err.name === 'NeonDbError'
}
