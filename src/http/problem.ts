// Problems as HTTP answers: `application/problem+json`, built through the request's context.
import type { Context } from 'hono'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import { PROBLEM_CONTENT_TYPE, type ProblemInit, problemBody } from '../contract/problem.ts'

/**
 * The problem as the request's answer. Built through the context, so it carries what the
 * middleware prepared (request id, security and rate-limit headers); its own headers win.
 */
export function problemResponse(c: Context, init: ProblemInit, requestId: string): Response {
  return c.body(JSON.stringify(problemBody(init, requestId)), init.status as ContentfulStatusCode, {
    ...init.headers,
    'Content-Type': PROBLEM_CONTENT_TYPE,
    'Cache-Control': 'no-store',
  })
}
