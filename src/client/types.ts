// Types of the SDK's own surface. Wire shapes come from src/contract (type-only imports, so the
// SDK bundle carries no zod and no server code); only what the schemas do not describe
// (options, headers the SDK surfaces, results that combine several responses) lives here.
import type {
  BatchStatus,
  HealthReport,
  Heartbeat,
  ProgressAccepted,
  ProgressUpdate,
  PublicHealth,
  UserContextResponse,
} from '../contract/index.ts'
import type { FetchLike, RetryPolicy } from './http.ts'

export interface AgentClientOptions {
  /** Origin (and optional path prefix) of the API, e.g. `https://agents.example.com`. */
  baseUrl: string
  agentId: string
  /** The agent's secret; or, for an agent that registered a public key, `privateKey`. */
  agentSecret?: string
  /**
   * RFC 7523 `private_key_jwt`: the private half of the key registered with
   * `npm run agents -- set-key` (ES256, ES384, EdDSA, PS256 or RS256). A fresh assertion signs
   * every token request; the secret is then not used.
   */
  privateKey?: CryptoKey
  /**
   * RFC 9449 DPoP: a key pair that every token is bound to. Each token request and each API
   * request then carries a fresh proof by it (and the `DPoP` scheme); a stolen token is useless
   * without the key. Required for agents whose row says so.
   */
  dpopKey?: CryptoKeyPair
  /** Scopes to ask for (space-separated); the agent's allowed scopes when omitted. */
  scope?: string
  /** Defaults to the global `fetch`, looked up at call time. */
  fetch?: FetchLike
  /** Refresh this long before the access token expires (default 5 minutes; capped at half the
   * token's lifetime so short-lived tokens are not refreshed on every call). */
  refreshMarginMs?: number
  /** Retry behaviour of every request (defaults in DEFAULT_RETRY_POLICY). */
  retry?: Partial<RetryPolicy>
  /** Clock in ms since the epoch (default `Date.now`). */
  now?: () => number
  /** Jitter source, uniform in [0, 1) (default `Math.random`). */
  random?: () => number
  /** Called when a background refresh fails; the current token stays in use meanwhile. */
  onBackgroundError?: (error: unknown) => void
}

export interface CallOptions {
  /** Aborts the call, its retries and their waits. */
  signal?: AbortSignal
}

export interface ContextOptions extends CallOptions {
  /** An ETag from an earlier answer: a `304` then resolves to `{ notModified: true }`. */
  ifNoneMatch?: string
  /** Sends `Cache-Control: no-cache` so the server bypasses its cache. */
  noCache?: boolean
}

export type CacheStatus = 'HIT' | 'MISS' | 'STALE' | 'BYPASS'

export interface ContextResult {
  notModified: false
  data: UserContextResponse
  etag: string | undefined
  /** `X-Cache`. */
  cache: CacheStatus | undefined
  /** `X-Degraded`: why the answer is degraded, when it is. */
  degradedReason: string | undefined
  requestId: string | undefined
}

export interface NotModifiedResult {
  notModified: true
  etag: string | undefined
  requestId: string | undefined
}

export interface ProgressBatchReceipt extends ProgressAccepted {
  /** `Location` of the batch (for `getBatch`). */
  location: string | undefined
  requestId: string | undefined
}

export interface ProgressReceipt {
  /** One per request sent: a single one unless more than 100 updates were given. */
  batches: ProgressBatchReceipt[]
  accepted: number
  duplicates: number
  /** Every update's idempotency key in input order (generated where the caller gave none). */
  idempotencyKeys: string[]
}

export interface AgentClient {
  /** `GET /api/v1/agent/users/{userId}/context`. */
  getUserContext(
    userId: string,
    options?: ContextOptions,
  ): Promise<ContextResult | NotModifiedResult>
  /** `POST /api/v1/agent/progress`: one update, or a list (sent 100 per request, in order). */
  reportProgress(
    input: ProgressUpdate | readonly ProgressUpdate[],
    options?: CallOptions,
  ): Promise<ProgressReceipt>
  /** `GET /api/v1/agent/progress/batches/{batchId}`. */
  getBatch(batchId: string, options?: CallOptions): Promise<BatchStatus>
  /** `POST /api/v1/agent/health`, with the agent's heartbeat when given. */
  reportHealth(heartbeat?: Heartbeat, options?: CallOptions): Promise<HealthReport>
  /** Public `GET /health` (or `/health/ready`); a failing readiness `503` resolves too. */
  checkHealth(options?: CallOptions & { ready?: boolean }): Promise<PublicHealth>
  /** A valid access token (for calls the SDK does not wrap). */
  getAccessToken(): Promise<string>
  /** Revokes the refresh token and the access token (by its `jti`) and forgets both. */
  logout(): Promise<void>
  /** Same as `logout()`. */
  revoke(): Promise<void>
  /**
   * A client that acts for one user (RFC 8693 token exchange of this client's token): every
   * call serves `userId` only, with at most `scope`. Its tokens are exchanged again as they
   * near expiry, single-flight, like this client's own.
   */
  forUser(userId: string, options?: { scope?: string }): AgentClient
}
