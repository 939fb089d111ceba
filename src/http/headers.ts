// The headers every answer carries beyond its own (docs/http.md): X-Request-Id, OWASP's REST
// security headers with `Cache-Control: no-store` unless the route says otherwise, and what
// later middleware adds (RateLimit-*). They are prepared in one plain record on the request and
// written once the answer exists: into the Response a hot route builds with `respond`, else onto
// whatever answer the route gave (a problem too), where a header the route set itself wins.
//
// Hand-written rather than hono's requestId and `c.header`: those keep prepared headers in a
// Headers object that every Response then copies header by header, and each Headers write
// (webidl conversion, validation) was a measurable share of a cache hit.
import type { Context, MiddlewareHandler } from 'hono'
import type { AppEnv, HeaderRecord } from './context.ts'

export type { HeaderRecord }

const SECURITY: Readonly<HeaderRecord> = {
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  'strict-transport-security': 'max-age=31536000; includeSubDomains',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  // Nothing an agent receives is meant for shared caches unless a route says otherwise.
  'cache-control': 'no-store',
}

/** A request's own X-Request-Id is echoed when it is 1–128 of these characters. */
const REQUEST_ID_MAX = 128
const NOT_REQUEST_ID = /[^\w\-=]/

/**
 * Names the request (`requestId`: the client's X-Request-Id if usable, else a UUID), prepares
 * the headers every answer carries, and writes those the answer lacks once it exists.
 */
export function responseHeaders(): MiddlewareHandler<AppEnv> {
  return async function responseHeaders(c, next) {
    const sent = c.req.header('x-request-id')
    const requestId =
      sent && sent.length <= REQUEST_ID_MAX && !NOT_REQUEST_ID.test(sent)
        ? sent
        : crypto.randomUUID()
    c.set('requestId', requestId)
    const prepared: HeaderRecord = { 'x-request-id': requestId, ...SECURITY }
    c.set('prepared', prepared)
    await next()
    const res = c.res
    if (c.get('answered') === res) return // built by `respond`, with every prepared header
    const headers = res.headers
    for (const name in prepared) {
      if (!headers.has(name)) headers.set(name, prepared[name as Lowercase<string>]!)
    }
  }
}

/** Adds a header to every answer of this request (the route's own value still wins). */
export function prepareHeader(c: Context<AppEnv>, name: Lowercase<string>, value: string): void {
  c.get('prepared')[name] = value
}

/** A header prepared for this request's answer, if any. */
export function preparedHeader(c: Context<AppEnv>, name: Lowercase<string>): string | undefined {
  return c.get('prepared')[name]
}

/**
 * The answer, with the prepared headers and `own` (which win) written in one go: one Headers
 * built from one record, where `c.body` would copy a prepared Headers and set each of its own.
 */
export function respond(
  c: Context<AppEnv>,
  body: string | Uint8Array<ArrayBuffer> | null,
  status: number,
  own: HeaderRecord,
): Response {
  const res = new Response(body, { status, headers: { ...c.get('prepared'), ...own } })
  c.set('answered', res)
  return res
}
