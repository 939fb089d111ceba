// The one error the SDK throws for anything the API (or the network) refused. Its message is
// built by the SDK from the method, path and problem code: credentials and tokens never reach
// it, and whatever the server or a custom fetch said is scrubbed before it is kept.
import type { ProblemBody } from '../contract/index.ts'

export interface AgentApiErrorInit {
  /** HTTP status, or 0 when no response arrived (network error, timeout). */
  status: number
  /** The problem's `code` (or OAuth `error`), else `http_<status>`, `network_error`, `timeout`. */
  code: string
  message: string
  problem?: ProblemBody
  requestId?: string
  retryAfterMs?: number
}

export class AgentApiError extends Error {
  readonly status: number
  readonly code: string
  /** The RFC 9457 body as the server sent it (scrubbed), when there was one. */
  readonly problem: ProblemBody | undefined
  /** `X-Request-Id` of the failed response: quote it when reporting a problem. */
  readonly requestId: string | undefined
  /** How long the server asked to wait (`Retry-After`), when it did. */
  readonly retryAfterMs: number | undefined
  /**
   * reportProgress only: every update's idempotency key, in input order (generated ones
   * included). After `outcome_unknown`, a timeout or a network error the updates may have been
   * accepted: send them again with these keys and nothing is applied twice.
   */
  idempotencyKeys?: string[]

  constructor(init: AgentApiErrorInit) {
    super(init.message)
    this.name = 'AgentApiError'
    this.status = init.status
    this.code = init.code
    this.problem = init.problem
    this.requestId = init.requestId
    this.retryAfterMs = init.retryAfterMs
  }
}

const REDACTED = '[redacted]'
// Anything shaped like a JWT (header.payload.signature, base64url), whoever it belongs to.
const JWT_SHAPE = /eyJ[\w-]*\.[\w-]*\.[\w-]*/g

/** Replaces the given sensitive values and anything JWT-shaped in `text`. */
export function scrub(text: string, sensitive: readonly string[]): string {
  let out = text.replace(JWT_SHAPE, REDACTED)
  for (const value of sensitive) {
    // Very short values would redact ordinary words; real secrets and tokens are long.
    if (value.length >= 4) out = out.split(value).join(REDACTED)
  }
  return out
}

function scrubDeep(value: unknown, sensitive: readonly string[]): unknown {
  if (typeof value === 'string') return scrub(value, sensitive)
  if (Array.isArray(value)) return value.map((v) => scrubDeep(v, sensitive))
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [scrub(k, sensitive), scrubDeep(v, sensitive)]),
    )
  }
  return value
}

/** `Retry-After` as milliseconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3). */
export function parseRetryAfter(header: string | null, now: number): number | undefined {
  if (header === null) return undefined
  const value = header.trim()
  if (/^\d+$/.test(value)) return Number(value) * 1000
  // All three HTTP date formats start with a day name; Date.parse alone accepts far more.
  if (!/^[A-Za-z]{3}/.test(value)) return undefined
  const date = Date.parse(value)
  return Number.isNaN(date) ? undefined : Math.max(0, date - now)
}

export interface ErrorContext {
  method: string
  /** Path only (no origin, no query): what the message names. */
  path: string
  now: number
  /** Values that must never appear in the error: the secret, tokens sent with the request. */
  sensitive: readonly string[]
}

function isProblem(value: unknown): value is ProblemBody {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

/** Turns a non-successful response into an AgentApiError (consuming its body). */
export async function errorFromResponse(res: Response, ctx: ErrorContext): Promise<AgentApiError> {
  let problem: ProblemBody | undefined
  if (/json/i.test(res.headers.get('content-type') ?? '')) {
    try {
      const body = scrubDeep(await res.json(), ctx.sensitive)
      if (isProblem(body)) problem = body
    } catch {
      problem = undefined // an unparseable error body still leaves the status to report
    }
  } else {
    await res.body?.cancel()
  }
  const code = stringField(problem, 'code') ?? stringField(problem, 'error') ?? `http_${res.status}`
  const detail = stringField(problem, 'detail') ?? stringField(problem, 'error_description')
  const requestId = res.headers.get('x-request-id') ?? undefined
  const retryAfterMs = parseRetryAfter(res.headers.get('retry-after'), ctx.now)
  return new AgentApiError({
    status: res.status,
    code,
    message: `${ctx.method} ${ctx.path} failed: ${res.status} ${code}${detail ? ` (${detail})` : ''}`,
    ...(problem ? { problem } : {}),
    ...(requestId ? { requestId: scrub(requestId, ctx.sensitive) } : {}),
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
  })
}

function stringField(problem: ProblemBody | undefined, key: string): string | undefined {
  const value = problem?.[key]
  return typeof value === 'string' && value !== '' ? value : undefined
}

/** Describes a thrown fetch error (and its causes) in one scrubbed line. */
export function describeError(err: unknown, sensitive: readonly string[]): string {
  const parts: string[] = []
  let current: unknown = err
  for (let depth = 0; depth < 3 && current !== undefined && current !== null; depth++) {
    if (current instanceof Error) {
      parts.push(`${current.name}: ${current.message}`)
      current = current.cause
    } else {
      parts.push(String(current))
      break
    }
  }
  return scrub(parts.join(' <- '), sensitive)
}
