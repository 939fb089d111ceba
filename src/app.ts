// The one Hono app, deployed unchanged to Cloudflare Workers (src/worker.ts) and Vercel's
// edge runtime (api/index.ts). Read top to bottom, this file is the request path:
//
//   request id and the headers every answer carries → services → logging/timing → body limit
//   → routes (auth → rate limit → validation → handler) → problem+json for every error
import { Hono } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { HTTPException } from 'hono/http-exception'
import { MAX_BODY_BYTES } from './contract/common.ts'
import { ProblemError, problems } from './contract/problem.ts'
import type { AppEnv } from './http/context.ts'
import { responseHeaders } from './http/headers.ts'
import { observe } from './http/observe.ts'
import { problemResponse } from './http/problem.ts'
import { attachServices } from './http/services.ts'
import { routeGroups } from './routes/index.ts'
import { ServiceCache } from './services.ts'

export { MAX_BODY_BYTES }

export interface AppOptions {
  /** The isolate's services; the entries share it with their scheduled handlers. */
  services?: ServiceCache
}

export function createApp(options: AppOptions = {}) {
  const services = options.services ?? new ServiceCache()

  const app = new Hono<AppEnv>()
    .use(responseHeaders())
    .use(attachServices(services))
    .use(observe())
    .use(
      bodyLimit({
        maxSize: MAX_BODY_BYTES,
        onError: () => {
          throw problems.tooLarge(MAX_BODY_BYTES)
        },
      }),
    )

  for (const routes of routeGroups()) app.route('/', routes)

  // A path that exists under other methods: 405 with Allow (RFC 9110 §15.5.6), and OPTIONS
  // answers with Allow alone (§9.3.7). Anything else is a 404.
  let allowed: ((path: string) => string[]) | undefined
  app.notFound((c) => {
    allowed ??= allowedMethods(app.routes)
    const path = new URL(c.req.url).pathname
    const methods = allowed(path)
    if (methods.length) {
      const allow = methods.join(', ')
      if (c.req.method === 'OPTIONS') return c.body(null, 204, { Allow: allow })
      return problemResponse(
        c,
        {
          status: 405,
          code: 'method_not_allowed',
          detail: `This method is not allowed here; use ${allow}`,
          headers: { Allow: allow },
        },
        c.get('requestId'),
      )
    }
    // Neither the path nor the method is repeated: they are request data (CONTRACT.md).
    return problemResponse(
      c,
      { status: 404, code: 'not_found', detail: 'No route matches this request' },
      c.get('requestId'),
    )
  })

  app.onError((err, c) => {
    const requestId = c.get('requestId') ?? crypto.randomUUID()
    if (err instanceof ProblemError) return problemResponse(c, err.problem, requestId)
    if (err instanceof HTTPException && err.status < 500) {
      return problemResponse(
        c,
        { status: err.status, code: 'bad_request', detail: err.message || undefined },
        requestId,
      )
    }
    // Anything else is a bug or an outage: log it (redacted), answer without internals.
    ;(c.get('log') ?? c.get('services')?.log)?.error('unhandled error', { error: err })
    return problemResponse(
      c,
      { status: 500, code: 'internal_error', detail: 'An unexpected error occurred' },
      requestId,
    )
  })

  return app
}

/**
 * For a path, the methods some route serves it with (HEAD wherever GET is, and OPTIONS), in
 * a stable order; empty when no route has the path. Built from the app's own route table.
 */
function allowedMethods(routes: readonly { path: string; method: string }[]) {
  const table = routes
    .filter((r) => r.method !== 'ALL' && !r.path.includes('*'))
    .map((r) => ({
      method: r.method,
      pattern: new RegExp(
        `^${r.path
          .split('/')
          .map((part) =>
            part.startsWith(':') ? '[^/]+' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'),
          )
          .join('/')}$`,
      ),
    }))
  const ORDER = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']
  return (path: string): string[] => {
    const methods = new Set(table.filter((r) => r.pattern.test(path)).map((r) => r.method))
    if (methods.size === 0) return []
    if (methods.has('GET')) methods.add('HEAD')
    methods.add('OPTIONS')
    return ORDER.filter((m) => methods.has(m))
  }
}
