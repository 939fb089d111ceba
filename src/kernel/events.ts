// Typed events the app emits from `finally` blocks. Metrics, alerts and tests subscribe;
// nothing counts things ad hoc inside handlers.

export type UpstreamName = 'neon' | 'redis'

export type AppEvent =
  | {
      type: 'http.request'
      method: string
      route: string
      status: number
      durationMs: number
      agentId?: string
    }
  | {
      type: 'upstream.call'
      upstream: UpstreamName
      operation: string
      ok: boolean
      durationMs: number
    }
  | {
      type: 'token.issued'
      grant: 'client_credentials' | 'refresh_token' | 'token_exchange'
      agentId: string
    }
  | { type: 'token.denied'; grant: string; reason: string }
  | { type: 'token.verified'; cached: boolean }
  | { type: 'token.rejected'; reason: string }
  | { type: 'token.revoked'; kind: 'access' | 'refresh' }
  | { type: 'ratelimit.limited'; limiter: string }
  | { type: 'upstream.fallback'; upstream: UpstreamName; operation: string }
  | { type: 'cache.read'; cache: string; status: 'HIT' | 'MISS' | 'STALE' | 'BYPASS' | 'ERROR' }
  | { type: 'context.degraded'; source: string; reason: string }
  | {
      type: 'progress.accepted'
      mode: 'queued' | 'committed'
      accepted: number
      duplicates: number
    }
  | {
      type: 'mcp.tool'
      /** A tool this server has (unknown names are never recorded). */
      tool: string
      /**
       * `ok`; `tool_error`: a domain answer (`isError`, e.g. an unknown user); `invalid`: the
       * arguments were refused (a protocol error); `failed`: an outage or a defect (a 5xx's kin).
       */
      outcome: 'ok' | 'tool_error' | 'invalid' | 'failed'
      durationMs: number
    }
  | { type: 'batch.flush'; items: number; changedUsers: number; ok: boolean; durationMs: number }
  | {
      type: 'breaker.transition'
      upstream: UpstreamName
      from: 'CLOSED' | 'OPEN' | 'HALF_OPEN'
      to: 'CLOSED' | 'OPEN' | 'HALF_OPEN'
      /** Adopted from another isolate's snapshot rather than caused here. */
      remote: boolean
    }

export type EventListener = (event: AppEvent) => void

export class EventBus {
  readonly #listeners = new Set<EventListener>()

  on(listener: EventListener): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  emit(event: AppEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event)
      } catch {
        // A broken subscriber must never break the request that emitted the event.
      }
    }
  }
}
