// Runtime seams: time, deferred work and isolate identity. Everything that differs between
// workerd, Vercel's edge runtime and the tests passes through here.
import type { Context } from 'hono'
import type { AppEnv } from './context.ts'
import type { Trace } from './trace.ts'

export interface Clock {
  /** Milliseconds since the epoch. Injected so breakers, caches and tokens run on fake time. */
  now(): number
}

export const systemClock: Clock = { now: () => Date.now() }

/**
 * What a request lends the upstream calls it makes: its timings, and the platform's
 * waitUntil for work (like publishing a breaker transition) that must not delay it.
 */
export interface CallScope {
  trace?: Trace
  defer?: (work: Promise<unknown>) => void
}

/** What both platforms' execution contexts offer for work that outlives the response. */
export interface WaitUntil {
  waitUntil(promise: Promise<unknown>): void
}

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
    defer: (work) =>
      defer(c, work, (err) => c.get('log').warn('background work failed', { error: err })),
  }
}

/** A short random id naming this isolate in logs and health reports. */
export function newIsolateId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(6))
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
}

/**
 * The caller's address as the platform reports it: Workers set `cf-connecting-ip`; Vercel
 * puts the client first in `x-forwarded-for`. Only the current platform's header is trusted,
 * since the other one passes through from the client untouched.
 */
export function clientAddress(headers: Headers, platform: 'workers' | 'vercel' | 'node'): string {
  const raw =
    platform === 'workers'
      ? headers.get('cf-connecting-ip')
      : headers.get('x-forwarded-for')?.split(',')[0]
  const address = raw?.trim()
  return address && address.length <= 64 ? address : 'unknown'
}
