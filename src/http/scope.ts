// The request's side of the platform seam: its call scope (trace and waitUntil) and the
// caller's address as the platform reports it.
import type { Context } from 'hono'
import type { PlatformName } from '../kernel/isolate.ts'
import type { CallScope, WaitUntil } from '../kernel/scope.ts'
import type { AppEnv } from './context.ts'

/**
 * Run `task` after the response without delaying it: through the platform's `waitUntil`
 * (Workers' ExecutionContext, Vercel's request context via the entry), or detached where
 * none exists (plain Node). A failure is reported, never thrown into the request.
 */
function defer(c: Context, task: Promise<unknown>, onError: (err: unknown) => void): void {
  const guarded = task.catch(onError)
  let ctx: WaitUntil | undefined
  try {
    ctx = c.executionCtx
  } catch {
    ctx = undefined // Hono throws when the entry passed no execution context
  }
  ctx?.waitUntil(guarded)
}

/** A request's scope for the upstream calls it makes: its trace, and its waitUntil. */
export function requestScope(c: Context<AppEnv>): CallScope {
  return {
    trace: c.get('trace'),
    actingFor: c.get('actingFor'),
    defer: (work) =>
      defer(c, work, (err) => c.get('log').warn('background work failed', { error: err })),
  }
}

/**
 * The caller's address as the platform reports it: Workers set `cf-connecting-ip`; Vercel
 * puts the client first in `x-forwarded-for`. Only the current platform's header is trusted,
 * since the other one passes through from the client untouched.
 */
export function clientAddress(headers: Headers, platform: PlatformName): string {
  const raw =
    platform === 'workers'
      ? headers.get('cf-connecting-ip')
      : headers.get('x-forwarded-for')?.split(',')[0]
  const address = raw?.trim()
  return address && address.length <= 64 ? address : 'unknown'
}
