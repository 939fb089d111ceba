// The agents' SDK: `createAgentClient()` and one typed method per route of CONTRACT.md.
// Web-standard APIs only (fetch, Request/Response/Headers, URL, crypto.randomUUID, AbortSignal,
// TextEncoder/TextDecoder), no timers beyond a call in progress: it runs in Node, browsers and
// Workers alike, and never keeps a process alive.
import type {
  BatchStatus,
  HealthReport,
  ProgressAccepted,
  ProgressUpdate,
  PublicHealth,
  UserContextResponse,
} from '../contract/index.ts'
import { jwtId } from './encoding.ts'
import { AgentApiError, errorFromResponse } from './errors.ts'
import { DEFAULT_RETRY_POLICY, type HttpRuntime, type RetryPolicy, send, sleep } from './http.ts'
import { createOAuthClient } from './oauth.ts'
import { dpopProver } from './proofs.ts'
import { createTokenManager, type TokenManager, type TokenManagerOptions } from './token-manager.ts'
import type {
  AgentClient,
  AgentClientOptions,
  CacheStatus,
  CallOptions,
  ProgressBatchReceipt,
} from './types.ts'

export { AgentApiError } from './errors.ts'
export { DEFAULT_RETRY_POLICY, type FetchLike, type RetryPolicy } from './http.ts'
export { DEFAULT_REFRESH_MARGIN_MS } from './token-manager.ts'
export type * from './types.ts'

/** Updates per request: the contract's limit for one batch. */
export const MAX_UPDATES_PER_REQUEST = 100

interface AuthorizedInit extends CallOptions {
  body?: string
  headers?: Record<string, string>
}

export function createAgentClient(options: AgentClientOptions): AgentClient {
  if (!options.agentId || !(options.agentSecret || options.privateKey)) {
    throw new TypeError('createAgentClient needs agentId and agentSecret (or privateKey)')
  }
  const baseUrl = normalizeBaseUrl(options.baseUrl)
  const now = options.now ?? (() => Date.now())
  const dpop = options.dpopKey ? dpopProver(options.dpopKey) : undefined
  const runtime: HttpRuntime = {
    // Looked up per call (tests and polyfills may replace it) and called unbound, as Workers
    // require of the global fetch.
    fetch: options.dpopKey
      ? // Every answer may carry the server's next DPoP nonce (RFC 9449 §8.2).
        async (input, init) => {
          const res = await (options.fetch ?? fetch)(input, init)
          dpop?.remember(res)
          return res
        }
      : (options.fetch ?? ((input, init) => fetch(input, init))),
    now,
    sleep,
    random: options.random ?? Math.random,
  }
  const policy: RetryPolicy = { ...DEFAULT_RETRY_POLICY, ...options.retry }
  const oauth = createOAuthClient({
    baseUrl,
    agentId: options.agentId,
    agentSecret: options.privateKey ? undefined : options.agentSecret,
    privateKey: options.privateKey,
    dpop,
    scope: options.scope,
    runtime,
    policy,
  })
  const manager = (requestToken: TokenManagerOptions['requestToken']) =>
    createTokenManager({
      requestToken,
      now,
      ...(options.refreshMarginMs === undefined
        ? {}
        : { refreshMarginMs: options.refreshMarginMs }),
      ...(options.onBackgroundError ? { onBackgroundError: options.onBackgroundError } : {}),
    })
  return over(manager((grant) => oauth.requestToken(grant)))

  /** The API's calls, made with the tokens `tokens` holds (the agent's own, or a user's). */
  function over(tokens: TokenManager): AgentClient {
    /** One API request with an access token: retried per the policy, and re-authenticated once
     * when the token is rejected (it may have been revoked or the server's keys rotated). With a
     * DPoP key, each attempt carries a fresh proof and the `DPoP` scheme (RFC 9449 §7.1). */
    async function authorized(method: string, path: string, init: AuthorizedInit = {}) {
      let token = ''
      const sensitive = () => [options.agentSecret ?? '', token]
      const attempt = () =>
        send(
          runtime,
          policy,
          async () => {
            token = await untilAborted(tokens.getToken(), init.signal)
            const url = baseUrl + path
            return new Request(url, {
              method,
              headers: {
                Accept: 'application/json',
                ...init.headers,
                Authorization: `${dpop ? 'DPoP' : 'Bearer'} ${token}`,
                ...(dpop ? { DPoP: await dpop.proof(method, url, now(), token) } : {}),
              },
              ...(init.body === undefined ? {} : { body: init.body }),
            })
          },
          { method, path, sensitive, ...(init.signal ? { signal: init.signal } : {}) },
        )
      let res = await attempt()
      if (dpop?.wantsNonce(res)) {
        // The token is fine; the proof needed the nonce this answer just gave.
        await res.body?.cancel()
        res = await attempt()
      }
      if (res.status === 401) {
        await res.body?.cancel()
        tokens.invalidate(token)
        res = await attempt() // a second 401 is the answer: surface it, no loop
      }
      if (res.ok || res.status === 304) return res
      throw await errorFromResponse(res, { method, path, now: now(), sensitive: sensitive() })
    }

    async function postProgress(
      body: unknown,
      idempotencyKey: string | undefined,
      call: CallOptions,
    ): Promise<ProgressBatchReceipt> {
      const res = await authorized('POST', PROGRESS_PATH, {
        ...call,
        // Serialized once: every retry sends the same bytes, keys included.
        body: JSON.stringify(body),
        headers: {
          'Content-Type': 'application/json',
          ...(idempotencyKey ? { 'Idempotency-Key': idempotencyKey } : {}),
        },
      })
      const accepted = (await res.json()) as ProgressAccepted
      return {
        ...accepted,
        location: header(res, 'location'),
        requestId: header(res, 'x-request-id'),
      }
    }

    async function logout() {
      const held = await tokens.clear()
      const jti = held.accessToken ? jwtId(held.accessToken) : undefined
      const results = await Promise.allSettled([
        held.refreshToken ? oauth.revoke(held.refreshToken, 'refresh_token') : undefined,
        jti ? oauth.revoke(jti, 'access_token') : undefined,
      ])
      // Forgotten either way; a failure is reported because the tokens may still be live.
      for (const result of results) if (result.status === 'rejected') throw result.reason
    }

    return {
      async getUserContext(userId, call = {}) {
        const path = `/api/v1/agent/users/${encodeURIComponent(userId)}/context`
        const res = await authorized('GET', path, {
          ...call,
          headers: {
            ...(call.ifNoneMatch ? { 'If-None-Match': call.ifNoneMatch } : {}),
            ...(call.noCache ? { 'Cache-Control': 'no-cache' } : {}),
          },
        })
        const etag = header(res, 'etag')
        const requestId = header(res, 'x-request-id')
        if (res.status === 304) {
          await res.body?.cancel()
          return { notModified: true, etag: etag ?? call.ifNoneMatch, requestId }
        }
        return {
          notModified: false,
          data: (await res.json()) as UserContextResponse,
          etag,
          cache: header(res, 'x-cache') as CacheStatus | undefined,
          degradedReason: header(res, 'x-degraded'),
          requestId,
        }
      },

      async reportProgress(input, call = {}) {
        const list = isUpdateList(input) ? input : [input]
        if (list.length === 0) throw new RangeError('reportProgress needs at least one update')
        // Keys are fixed before the first attempt so that every retry (and every re-auth) of a
        // request carries the same ones and the server applies each update once.
        const updates: ProgressUpdate[] = list.map((u) =>
          u.idempotency_key ? { ...u } : { ...u, idempotency_key: crypto.randomUUID() },
        )
        const batches: ProgressBatchReceipt[] = []
        try {
          if (!isUpdateList(input)) {
            const [update] = updates
            batches.push(await postProgress(update, update!.idempotency_key, call))
          } else {
            for (let i = 0; i < updates.length; i += MAX_UPDATES_PER_REQUEST) {
              const chunk = updates.slice(i, i + MAX_UPDATES_PER_REQUEST)
              batches.push(await postProgress({ updates: chunk }, undefined, call))
            }
          }
        } catch (err) {
          // 503 outcome_unknown (and timeouts) were retried with these keys already; if they
          // still failed, the caller needs the keys to retry safely later.
          if (err instanceof AgentApiError)
            err.idempotencyKeys = updates.map((u) => u.idempotency_key!)
          throw err
        }
        return {
          batches,
          accepted: batches.reduce((sum, b) => sum + b.accepted, 0),
          duplicates: batches.reduce((sum, b) => sum + b.duplicates, 0),
          idempotencyKeys: updates.map((u) => u.idempotency_key!),
        }
      },

      async getBatch(batchId, call = {}) {
        const res = await authorized(
          'GET',
          `${PROGRESS_PATH}/batches/${encodeURIComponent(batchId)}`,
          call,
        )
        return (await res.json()) as BatchStatus
      },

      async reportHealth(heartbeat, call = {}) {
        // The heartbeat is optional: without one, no body (the route accepts an empty request).
        const res = await authorized('POST', '/api/v1/agent/health', {
          ...call,
          ...(heartbeat === undefined
            ? {}
            : { body: JSON.stringify(heartbeat), headers: { 'Content-Type': 'application/json' } }),
        })
        return (await res.json()) as HealthReport
      },

      async checkHealth(call = {}) {
        const path = call.ready ? '/health/ready' : '/health'
        // A probe reports what it sees: one attempt, no retries.
        const res = await send(
          runtime,
          { ...policy, maxAttempts: 1 },
          () => new Request(baseUrl + path, { headers: { Accept: 'application/health+json' } }),
          { method: 'GET', path, ...(call.signal ? { signal: call.signal } : {}) },
        )
        // A failing readiness check answers 503 with the same body: that is a result, not an error.
        const isHealthBody = /health\+json/i.test(res.headers.get('content-type') ?? '')
        if (res.ok || (res.status === 503 && isHealthBody))
          return (await res.json()) as PublicHealth
        throw await errorFromResponse(res, { method: 'GET', path, now: now(), sensitive: [] })
      },

      getAccessToken: () => tokens.getToken(),
      logout,
      revoke: logout,

      forUser(userId, forUserOptions = {}) {
        return over(
          manager(async () =>
            oauth.exchange(await tokens.getToken(), userId, forUserOptions.scope),
          ),
        )
      },
    }
  }
}

const PROGRESS_PATH = '/api/v1/agent/progress'

function normalizeBaseUrl(baseUrl: string): string {
  const url = new URL(baseUrl) // throws early on a malformed base URL
  if (url.username || url.password) {
    throw new TypeError('baseUrl must not carry credentials; pass agentId and agentSecret')
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`
}

function header(res: Response, name: string): string | undefined {
  return res.headers.get(name) ?? undefined
}

function isUpdateList(
  input: ProgressUpdate | readonly ProgressUpdate[],
): input is readonly ProgressUpdate[] {
  return Array.isArray(input)
}

/** Lets a caller stop waiting for a shared token request without cancelling it for others. */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work
  if (signal.aborted) return Promise.reject(signal.reason)
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
  })
}
