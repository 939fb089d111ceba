// One operation of the API, defined once, beside its handler: what it accepts (the schemas its
// validators are built from) and every answer it can give (statuses, headers, bodies, problem
// codes). The routes register their handlers from it (./validate.ts: `validate(op)`,
// `authorize(op)`); the OpenAPI document is generated from all of them
// (src/openapi/generate.ts), so neither can drift from the other. Plain data: building it
// costs nothing at start-up.
//
// Types and a few constants only: the lazily loaded OpenAPI generator imports this module, and
// a bundler makes whatever that graph imports at run time lazily initialised (slower to start).
import type * as z from 'zod/mini'
import type { ProblemCode } from '../contract/problems.ts'
import type { Scope } from '../contract/token.ts'

/** The response headers the document knows (src/openapi/document.ts describes each). */
export type HeaderName =
  | 'X-Request-Id'
  | 'Server-Timing'
  | 'Cache-Control'
  | 'RateLimit-Limit'
  | 'RateLimit-Remaining'
  | 'RateLimit-Reset'
  | 'Retry-After'
  | 'WWW-Authenticate'
  | 'Accept-Post'
  | 'Location'
  | 'ETag'
  | 'X-Cache'
  | 'X-Degraded'
  | 'Pragma'
  | 'Allow'
  | 'Vary'

/** The draft-ietf-httpapi-ratelimit-headers trio. */
export const RATE_LIMIT: readonly HeaderName[] = [
  'RateLimit-Limit',
  'RateLimit-Remaining',
  'RateLimit-Reset',
]

/** A problem answer that may carry the rate-limit headers (any answer after requireAuth). */
export const problem = (problems: readonly ProblemCode[], description: string): ResponseDoc => ({
  description,
  problems,
  optionalHeaders: RATE_LIMIT,
})

/** A 503: `Retry-After` always; by default nothing was done (the codes may say otherwise). */
export const unavailable = (
  problems: readonly ProblemCode[],
  description = 'Unavailable: nothing was done; retry after `Retry-After` seconds',
): ResponseDoc => ({ description, problems, headers: ['Retry-After'], optionalHeaders: RATE_LIMIT })

/** A JSON Schema, where no zod schema describes a body (the document itself, a page). */
export type JsonSchema = { [keyword: string]: unknown }

/** A zod schema, or one built on first use (the answers': see src/contract/common.ts). */
export type Described = z.ZodMiniType | (() => z.ZodMiniType)

export interface MediaDoc {
  schema: Described | JsonSchema
  example?: unknown
  examples?: Record<string, { summary: string; value: unknown }>
}

/** Answers every operation shares, described once (src/openapi/document.ts). */
export type SharedResponse = 'RateLimited' | 'BodyTooLarge' | 'UnsupportedMediaType'

export interface ResponseDoc {
  description: string
  /**
   * Headers it always carries, beyond X-Request-Id, Server-Timing and Cache-Control (which
   * every answer has), then those it may carry; `headerDocs` refines what one says here.
   */
  headers?: readonly HeaderName[]
  optionalHeaders?: readonly HeaderName[]
  headerDocs?: Partial<Record<HeaderName, { description?: string; schema?: JsonSchema }>>
  /** The body by media type; absent: no body. */
  content?: Record<string, MediaDoc>
  /** A problem answer (`application/problem+json`) carrying one of these codes. */
  problems?: readonly ProblemCode[]
  /**
   * The problem answer's media type when not `application/problem+json`: the OAuth endpoints
   * answer `application/json` (RFC 6749 §5.2), with OAuth's members beside the problem's.
   */
  problemMediaType?: 'application/json'
}

export type Tag =
  | 'tokens'
  | 'discovery'
  | 'context'
  | 'progress'
  | 'mcp'
  | 'health'
  | 'internal'
  | 'docs'

/** Security requirements other than a bearer access token (OpenAPI's, by scheme name). */
export type Requirement = Partial<Record<'clientBasic' | 'bearerAuth' | 'cronSecret', []>>

export interface Operation {
  method: 'get' | 'post'
  /** Hono's path syntax (`:userId`). */
  path: string
  operationId: string
  summary: string
  description: string
  tag: Tag
  /**
   * A bearer access token is required, with this scope (`any` accepts every valid token). Implies the
   * answers requireAuth gives: 401, 403 (with a scope), 429, and 503 when failing closed.
   */
  scope?: Scope | 'any'
  /** Otherwise, how a client authenticates (OpenAPI security requirements; `{}`: anonymous). */
  security?: readonly Requirement[]
  request?: {
    /** Validated: a 400 names each parameter that fails. */
    params?: z.ZodMiniType
    /** Validated query parameters (strings as sent; a 400 names each that fails). */
    query?: z.ZodMiniType
    /** Documented request headers; the operation's service reads them. */
    headers?: Described
    /** A validated JSON body. */
    json?: z.ZodMiniType
    /** The body may be absent. */
    optional?: boolean
    /** See JsonBodyOptions.select. */
    select?: (body: unknown) => z.ZodMiniType
    /** Members kept with their source text, stored as sent (see JsonBodyOptions.sources). */
    jsonSources?: readonly string[]
    /** How the body is documented, when more than `json` (examples, other media types). */
    body?: { description: string; content: Record<string, MediaDoc> }
  }
  /**
   * Every answer by status. The document adds what middleware answers on any operation: 500,
   * 413 for a POST, 415 where a body is validated, and the auth answers of `scope`.
   */
  responses: Record<string, ResponseDoc | SharedResponse>
}
