// Attaches the isolate's services (built once from the validated environment) to the request.
import type { MiddlewareHandler } from 'hono'
import type { ServiceCache } from '../services.ts'
import type { AppEnv } from './context.ts'

export function attachServices(cache: ServiceCache): MiddlewareHandler<AppEnv> {
  return async function attachServices(c, next) {
    const raw: object = c.env ?? {}
    c.set('services', cache.get(raw))
    await next()
  }
}
