// One structured log line, one `http.request` event and a Server-Timing header per request.
import type { MiddlewareHandler } from 'hono'
import { routePath } from 'hono/route'
import { Trace } from '../kernel/trace.ts'
import type { AppEnv } from './context.ts'
import { requestScope } from './scope.ts'

export function observe(): MiddlewareHandler<AppEnv> {
  return async function observe(c, next) {
    const start = performance.now()
    const services = c.get('services')
    const trace = new Trace()
    const log = services.log.child({ request_id: c.get('requestId') })
    c.set('trace', trace)
    c.set('log', log)
    try {
      await next()
    } finally {
      const durationMs = performance.now() - start
      const status = c.res.status
      const route = matchedRoute(c)
      c.res.headers.set('Server-Timing', trace.serverTiming(durationMs))
      const agentId = c.get('agentId')
      services.events.emit({
        type: 'http.request',
        method: c.req.method,
        route,
        status,
        durationMs,
        agentId,
      })
      const level = status >= 500 ? 'error' : 'info'
      if (log.enabled(level)) {
        log[level]('request', {
          method: c.req.method,
          route,
          status,
          duration_ms: Math.round(durationMs * 10) / 10,
          ...(agentId ? { agent_id: agentId } : {}),
        })
      }
      // Cross-isolate counts: added up here, sent to Redis in batches through waitUntil.
      const global = services.health.global
      if (global) {
        global.count(route, status >= 500)
        global.maybeFlush(requestScope(c))
      }
    }
  }
}

/** The route pattern that answered (never the raw path, which may carry ids), or "unmatched". */
function matchedRoute(c: Parameters<MiddlewareHandler<AppEnv>>[0]): string {
  const path = routePath(c, -1)
  return path && !path.endsWith('*') ? path : 'unmatched'
}
