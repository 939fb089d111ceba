// RFC 9457 problem details: the one shape every error leaves the API in.
//
// Handlers and services throw `ProblemError`; the error boundary in src/app.ts turns it (and
// anything else) into `application/problem+json` (src/http/problem.ts). A `type` is a relative
// reference to /problems/<code>, which the docs describe.

import type * as z from 'zod/mini'
import type { fieldError, problem } from './problem-schema.ts'
import type { ProblemCode } from './problems.ts'

/** One field's failure: its dotted path (e.g. "updates.3.progress") and what is wrong. */
export type FieldError = z.output<ReturnType<typeof fieldError>>

export interface ProblemInit {
  status: number
  /** Stable machine-readable code, e.g. "validation_failed", "invalid_client" (the catalogue). */
  code: ProblemCode
  title?: string
  detail?: string
  errors?: FieldError[]
  /** Extra members (e.g. OAuth's `error` and `error_description`). */
  extensions?: Record<string, unknown>
  headers?: Record<string, string>
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
}

export const PROBLEM_CONTENT_TYPE = 'application/problem+json'

/** V8's (workerd's and the edge runtime's) Error: its stack-trace depth can be set. */
const V8Error = Error as ErrorConstructor & { stackTraceLimit: number }

export class ProblemError extends Error {
  readonly problem: ProblemInit

  constructor(problem: ProblemInit) {
    // An expected outcome, not a bug: skip the stack trace, which costs more than the rest of
    // a rejected request (hono only hands Error instances to onError, so it stays an Error).
    const limit = V8Error.stackTraceLimit
    V8Error.stackTraceLimit = 0
    super(problem.detail ?? problem.code)
    V8Error.stackTraceLimit = limit
    this.name = 'ProblemError'
    this.problem = problem
  }
}

/** The body of every problem answer: the Problem schema's members, and any extension. */
export type ProblemBody = z.output<ReturnType<typeof problem>> & { [extension: string]: unknown }

export function problemBody(init: ProblemInit, requestId: string): ProblemBody {
  return {
    ...init.extensions,
    type: `/problems/${init.code}`,
    title: init.title ?? TITLES[init.status] ?? 'Error',
    status: init.status,
    ...(init.detail === undefined ? {} : { detail: init.detail }),
    code: init.code,
    request_id: requestId,
    ...(init.errors ? { errors: init.errors } : {}),
  }
}

/** Shorthands for the problems many routes raise. */
export const problems = {
  validation: (errors: FieldError[], detail = 'The request body is not valid') =>
    new ProblemError({ status: 400, code: 'validation_failed', detail, errors }),
  invalidJson: () =>
    new ProblemError({ status: 400, code: 'invalid_json', detail: 'The body is not valid JSON' }),
  notFound: (detail = 'No such resource') =>
    new ProblemError({ status: 404, code: 'not_found', detail }),
  unsupportedMediaType: (accepted: readonly string[]) =>
    new ProblemError({
      status: 415,
      code: 'unsupported_media_type',
      detail: `Send the body as ${accepted.join(' or ')}`,
      headers: { 'Accept-Post': accepted.join(', ') },
    }),
  tooLarge: (limit: number) =>
    new ProblemError({
      status: 413,
      code: 'body_too_large',
      detail: `The body exceeds ${limit} bytes`,
    }),
  unavailable: (code: ProblemCode, detail: string, retryAfterSeconds: number) =>
    new ProblemError({
      status: 503,
      code,
      detail,
      headers: { 'Retry-After': String(Math.max(1, Math.ceil(retryAfterSeconds))) },
    }),
}
