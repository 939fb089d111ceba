// Metrics of this isolate, derived from the typed events the app emits: per-route request
// counts, error rates and latency percentiles over sliding windows (1 and 5 minutes) in fixed
// memory, cache hit rates, token, progress and upstream counters. O(1) per event.
import type { AppEvent, EventBus } from '../kernel/events.ts'
import { SlidingWindow, type WindowStats } from './window.ts'

const MINUTE = 60_000
const SPAN = 5 * MINUTE
const SLOT = 10_000
/** Routes are patterns, so few; anything past this bound is counted under "other". */
const MAX_ROUTES = 64

export interface RouteMetrics {
  route: string
  lastMinute: WindowStats
  lastFiveMinutes: WindowStats
  /** Requests since this isolate started. */
  total: number
}

/** One MCP tool's calls: latency and `failed` calls in the windows, and every outcome's count. */
export interface ToolMetrics {
  tool: string
  lastMinute: WindowStats
  lastFiveMinutes: WindowStats
  calls: number
  toolErrors: number
  invalid: number
  failed: number
}

export interface MetricsSnapshot {
  requests: { lastMinute: WindowStats; lastFiveMinutes: WindowStats; total: number }
  routes: RouteMetrics[]
  tools: ToolMetrics[]
  cache: Record<
    string,
    {
      hits: number
      misses: number
      stale: number
      bypass: number
      errors: number
      hitRate: number | null
    }
  >
  tokens: {
    issued: number
    refreshed: number
    denied: number
    verified: number
    verifiedFromCache: number
    rejected: number
    revoked: number
  }
  progress: {
    accepted: number
    duplicates: number
    queuedRequests: number
    committedRequests: number
  }
  flushes: {
    runs: number
    failures: number
    items: number
    lastAt: string | null
    lastDurationMs: number | null
  }
  upstreams: Record<string, { calls: number; failures: number }>
  degradedAnswers: number
  rateLimited: number
}

interface CacheCounters {
  hits: number
  misses: number
  stale: number
  bypass: number
  errors: number
}

export class MetricsCollector {
  readonly #now: () => number
  readonly #all = new SlidingWindow(SPAN, SLOT)
  readonly #routes = new Map<string, { window: SlidingWindow; total: number }>()
  #total = 0
  readonly #tools = new Map<
    string,
    { window: SlidingWindow; calls: number; toolErrors: number; invalid: number; failed: number }
  >()
  readonly #cache = new Map<string, CacheCounters>()
  readonly #tokens = {
    issued: 0,
    refreshed: 0,
    denied: 0,
    verified: 0,
    verifiedFromCache: 0,
    rejected: 0,
    revoked: 0,
  }
  readonly #progress = { accepted: 0, duplicates: 0, queuedRequests: 0, committedRequests: 0 }
  readonly #flushes = {
    runs: 0,
    failures: 0,
    items: 0,
    lastAt: null as number | null,
    lastDurationMs: null as number | null,
  }
  readonly #upstreams = new Map<string, { calls: number; failures: number }>()
  #degraded = 0
  #rateLimited = 0

  constructor(now: () => number) {
    this.#now = now
  }

  #unsubscribe?: () => void

  listen(events: EventBus): void {
    this.#unsubscribe?.()
    this.#unsubscribe = events.on((event) => this.record(event))
  }

  stopListening(): void {
    this.#unsubscribe?.()
    this.#unsubscribe = undefined
  }

  record(event: AppEvent): void {
    switch (event.type) {
      case 'http.request': {
        const now = this.#now()
        const error = event.status >= 500
        this.#all.record(now, event.durationMs, error)
        this.#total++
        const route = this.#route(event.route)
        route.window.record(now, event.durationMs, error)
        route.total++
        return
      }
      case 'mcp.tool': {
        // Tool names come from the server's own list, so the map stays as small as that list.
        let t = this.#tools.get(event.tool)
        if (!t) {
          t = {
            window: new SlidingWindow(SPAN, SLOT),
            calls: 0,
            toolErrors: 0,
            invalid: 0,
            failed: 0,
          }
          this.#tools.set(event.tool, t)
        }
        t.window.record(this.#now(), event.durationMs, event.outcome === 'failed')
        t.calls++
        if (event.outcome === 'tool_error') t.toolErrors++
        else if (event.outcome === 'invalid') t.invalid++
        else if (event.outcome === 'failed') t.failed++
        return
      }
      case 'cache.read': {
        const c = this.#cacheCounters(event.cache)
        if (event.status === 'HIT') c.hits++
        else if (event.status === 'MISS') c.misses++
        else if (event.status === 'STALE') c.stale++
        else if (event.status === 'BYPASS') c.bypass++
        else c.errors++
        return
      }
      case 'token.issued':
        if (event.grant === 'refresh_token') this.#tokens.refreshed++
        else this.#tokens.issued++
        return
      case 'token.denied':
        this.#tokens.denied++
        return
      case 'token.verified':
        if (event.cached) this.#tokens.verifiedFromCache++
        else this.#tokens.verified++
        return
      case 'token.rejected':
        this.#tokens.rejected++
        return
      case 'token.revoked':
        this.#tokens.revoked++
        return
      case 'progress.accepted':
        this.#progress.accepted += event.accepted
        this.#progress.duplicates += event.duplicates
        if (event.mode === 'queued') this.#progress.queuedRequests++
        else this.#progress.committedRequests++
        return
      case 'batch.flush':
        this.#flushes.runs++
        if (!event.ok) this.#flushes.failures++
        else this.#flushes.items += event.items
        this.#flushes.lastAt = this.#now()
        this.#flushes.lastDurationMs = Math.round(event.durationMs)
        return
      case 'upstream.call': {
        let u = this.#upstreams.get(event.upstream)
        if (!u) {
          u = { calls: 0, failures: 0 }
          this.#upstreams.set(event.upstream, u)
        }
        u.calls++
        if (!event.ok) u.failures++
        return
      }
      case 'context.degraded':
        this.#degraded++
        return
      case 'ratelimit.limited':
        this.#rateLimited++
        return
      default:
        return
    }
  }

  snapshot(): MetricsSnapshot {
    const now = this.#now()
    const cache: MetricsSnapshot['cache'] = {}
    for (const [name, c] of this.#cache) {
      const reads = c.hits + c.misses + c.stale + c.bypass
      cache[name] = {
        ...c,
        hitRate: reads ? Math.round(((c.hits + c.stale) / reads) * 1000) / 10 : null,
      }
    }
    return {
      requests: {
        lastMinute: this.#all.stats(now, MINUTE),
        lastFiveMinutes: this.#all.stats(now, SPAN),
        total: this.#total,
      },
      routes: [...this.#routes].map(([route, r]) => ({
        route,
        lastMinute: r.window.stats(now, MINUTE),
        lastFiveMinutes: r.window.stats(now, SPAN),
        total: r.total,
      })),
      tools: [...this.#tools].map(([tool, t]) => ({
        tool,
        lastMinute: t.window.stats(now, MINUTE),
        lastFiveMinutes: t.window.stats(now, SPAN),
        calls: t.calls,
        toolErrors: t.toolErrors,
        invalid: t.invalid,
        failed: t.failed,
      })),
      cache,
      tokens: { ...this.#tokens },
      progress: { ...this.#progress },
      flushes: {
        ...this.#flushes,
        lastAt: this.#flushes.lastAt === null ? null : new Date(this.#flushes.lastAt).toISOString(),
      },
      upstreams: Object.fromEntries(this.#upstreams),
      degradedAnswers: this.#degraded,
      rateLimited: this.#rateLimited,
    }
  }

  #route(route: string) {
    let r = this.#routes.get(route)
    if (!r) {
      const name = this.#routes.size < MAX_ROUTES ? route : 'other'
      r = this.#routes.get(name)
      if (!r) {
        r = { window: new SlidingWindow(SPAN, SLOT), total: 0 }
        this.#routes.set(name, r)
      }
    }
    return r
  }

  #cacheCounters(name: string): CacheCounters {
    let c = this.#cache.get(name)
    if (!c) {
      c = { hits: 0, misses: 0, stale: 0, bypass: 0, errors: 0 }
      this.#cache.set(name, c)
    }
    return c
  }
}
