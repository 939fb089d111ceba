// The response headers every answer of a JSON API should carry (OWASP's REST security
// headers), error answers included. A header a route sets itself wins: /docs sends its own
// Content-Security-Policy, the context route its own Cache-Control. Hand-written because
// hono's secureHeaders computes a dozen headers per request, most of them for HTML pages,
// and that was a measurable share of a cache hit.
import type { MiddlewareHandler } from 'hono'

const HEADERS: readonly [string, string][] = [
  ['Content-Security-Policy', "default-src 'none'; frame-ancestors 'none'"],
  ['Strict-Transport-Security', 'max-age=31536000; includeSubDomains'],
  ['X-Content-Type-Options', 'nosniff'],
  ['X-Frame-Options', 'DENY'],
  ['Referrer-Policy', 'no-referrer'],
  // Nothing an agent receives is meant for shared caches unless a route says otherwise.
  ['Cache-Control', 'no-store'],
]

export function securityHeaders(): MiddlewareHandler {
  return async function securityHeaders(c, next) {
    // Prepared before the route runs, they are part of the response it builds, problem
    // answers included (one copy, and a route's own value simply replaces them).
    for (const [name, value] of HEADERS) c.header(name, value)
    await next()
  }
}
