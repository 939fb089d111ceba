// Vercel's side of the platform seam. Edge Functions receive `(request, context)` with
// `context.waitUntil`; other invocation paths expose the same through the request-context
// symbol. We read both directly instead of importing @vercel/functions, whose entry point
// pulls Node-only OIDC code into an edge bundle.
import type { ExecutionContext } from 'hono'
import { createApp } from './app.ts'
import { type EnvSource, processEnv } from './config/env-source.ts'
import { ServiceCache } from './services.ts'

export interface VercelContext {
  waitUntil?: (promise: Promise<unknown>) => void
}

const REQUEST_CONTEXT = Symbol.for('@vercel/request-context')

type ContextHost = { [REQUEST_CONTEXT]?: { get?: () => VercelContext | undefined } }

export function vercelExecutionContext(context?: VercelContext): ExecutionContext {
  const waitUntil = (promise: Promise<unknown>) => {
    const fromGlobal = (globalThis as ContextHost)[REQUEST_CONTEXT]?.get?.()
    const target = context?.waitUntil ?? fromGlobal?.waitUntil
    if (target) target(promise)
    else void promise.catch(() => {}) // no platform to extend the request: best effort
  }
  return { waitUntil, passThroughOnException: () => {}, props: {} }
}

/**
 * The edge function: Vercel hands the handler no env, so the process environment becomes
 * the app's env, read once per isolate.
 */
export function createVercelHandler(readEnv: () => EnvSource = processEnv) {
  const app = createApp({ services: new ServiceCache({ platform: 'vercel' }) })
  let env: EnvSource | undefined
  return (request: Request, context?: VercelContext): Promise<Response> => {
    env ??= readEnv()
    return Promise.resolve(app.fetch(request, env, vercelExecutionContext(context)))
  }
}
