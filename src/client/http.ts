// One logical request: attempts with a per-attempt timeout, jittered exponential backoff on
// 429/5xx/network errors, `Retry-After` honoured, bounded by attempts and a total time budget.
// Delays are sleeps awaited by the call in progress; nothing is scheduled beyond it.
import { AgentApiError, describeError, parseRetryAfter } from './errors.ts'

export type FetchLike = (input: Request, init?: RequestInit) => Promise<Response>

export interface RetryPolicy {
  /** Attempts in all, the first included (1 = no retries). */
  maxAttempts: number
  /** Backoff before the first retry; doubles per retry, with jitter. */
  baseDelayMs: number
  /** Cap of one backoff delay (Retry-After is honoured beyond it, within the budget). */
  maxDelayMs: number
  /** No retry starts once it would end past this much time since the first attempt. */
  budgetMs: number
  /** Deadline of one attempt (until the response headers arrive). */
  timeoutMs: number
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  maxAttempts: 4,
  baseDelayMs: 500,
  maxDelayMs: 10_000,
  budgetMs: 30_000,
  timeoutMs: 15_000,
}

export interface HttpRuntime {
  fetch: FetchLike
  now(): number
  /** Resolves after `ms` (rejects with the signal's reason if it aborts first). */
  sleep(ms: number, signal?: AbortSignal): Promise<void>
  /** Uniform in [0, 1): the jitter source. */
  random(): number
}

/** An attempt's outcome, for deciding whether another attempt may follow. */
export type Outcome = { response: Response } | { error: AgentApiError }

export interface SendOptions {
  method: string
  /** Path for error messages. */
  path: string
  /** Which outcomes may be retried (default: 429, any 5xx, network errors and timeouts). */
  retryable?: (outcome: Outcome) => boolean
  /** Values to scrub from error messages (the secret, the tokens in the request). */
  sensitive?: () => readonly string[]
  signal?: AbortSignal
}

export function defaultRetryable(outcome: Outcome): boolean {
  if ('error' in outcome) return true
  const { status } = outcome.response
  return status === 429 || status >= 500
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason)
    const onAbort = () => {
      clearTimeout(timer)
      reject(signal?.reason)
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/** Full jitter on an exponential base; a server's Retry-After is a floor, plus a little jitter
 * so that clients told the same instant do not all return at once. */
export function retryDelay(
  retry: number,
  retryAfterMs: number | undefined,
  policy: RetryPolicy,
  random: () => number,
): number {
  if (retryAfterMs !== undefined) return retryAfterMs + Math.floor(random() * policy.baseDelayMs)
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (retry - 1))
  return Math.floor(random() * ceiling)
}

/**
 * Sends `makeRequest()` (called anew for every attempt: bodies are single-use, and a retry
 * should carry the freshest token) until it succeeds, fails in a way not worth retrying, or
 * the attempts or the budget run out. Resolves with the last response, whatever its status;
 * throws an AgentApiError when the last attempt got no response at all.
 */
export async function send(
  rt: HttpRuntime,
  policy: RetryPolicy,
  makeRequest: () => Request | Promise<Request>,
  options: SendOptions,
): Promise<Response> {
  const retryable = options.retryable ?? defaultRetryable
  const started = rt.now()
  for (let attempt = 1; ; attempt++) {
    const outcome = await attemptOnce(rt, policy, await makeRequest(), options)
    if ('response' in outcome && outcome.response.status < 400) return outcome.response

    const retryAfterMs =
      'response' in outcome
        ? parseRetryAfter(outcome.response.headers.get('retry-after'), rt.now())
        : undefined
    const delay = retryDelay(attempt, retryAfterMs, policy, rt.random)
    const withinBudget = rt.now() + delay - started <= policy.budgetMs
    if (attempt >= policy.maxAttempts || !withinBudget || !retryable(outcome)) {
      if ('error' in outcome) throw outcome.error
      return outcome.response
    }
    // Free the connection of a response nobody will read.
    if ('response' in outcome) await outcome.response.body?.cancel()
    await rt.sleep(delay, options.signal)
  }
}

async function attemptOnce(
  rt: HttpRuntime,
  policy: RetryPolicy,
  request: Request,
  options: SendOptions,
): Promise<Outcome> {
  const caller = options.signal
  if (caller?.aborted) throw caller.reason
  const controller = new AbortController()
  const onAbort = () => controller.abort(caller?.reason)
  caller?.addEventListener('abort', onAbort, { once: true })
  let timer: ReturnType<typeof setTimeout> | undefined
  // Race as well as abort: a custom fetch may ignore its signal.
  const deadline = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => {
      controller.abort()
      resolve('timeout')
    }, policy.timeoutMs)
  })
  const aborted = new Promise<'aborted'>((resolve) => {
    controller.signal.addEventListener('abort', () => resolve('aborted'), { once: true })
  })
  try {
    const result = await Promise.race([
      rt.fetch(request, { signal: controller.signal }),
      deadline,
      aborted,
    ])
    if (result instanceof Response) return { response: result }
    if (caller?.aborted) throw caller.reason
    return { error: failure('timeout', `timed out after ${policy.timeoutMs} ms`, options) }
  } catch (err) {
    // The caller gave up: theirs to handle, not ours to retry.
    if (caller?.aborted) throw caller.reason
    const detail = describeError(err, options.sensitive?.() ?? [])
    return { error: failure('network_error', `network error (${detail})`, options) }
  } finally {
    clearTimeout(timer)
    caller?.removeEventListener('abort', onAbort)
  }
}

function failure(code: string, what: string, options: SendOptions): AgentApiError {
  return new AgentApiError({
    status: 0,
    code,
    message: `${options.method} ${options.path}: ${what}`,
  })
}
