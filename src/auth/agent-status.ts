// What the auth path needs to know about an agent beyond its token: is it still active, and
// has every token it holds been revoked since (an agent-wide not-before)? Answers are cached
// per isolate for GRANT_CACHE_TTL_MS, like grants, so a deactivation or an agent-wide
// revocation takes effect within that time, and a warm isolate pays no round trip for it.
//
// While the database cannot answer, a recent answer (kept ten TTLs past freshness) decides;
// with none, the token is trusted as verified: a database outage degrades reads, it does not
// lock every agent out (CONTRACT.md, degraded modes).
import { BoundedLru } from '../cache/lru.ts'
import { type Database, isDatabaseOutage, sql } from '../db/client.ts'
import type { CallScope } from '../kernel/scope.ts'
import { msOrNull } from './credentials.ts'

export interface AgentStatus {
  /** False for an inactive agent and for one that no longer exists. */
  active: boolean
  /** Access tokens issued (`iat`) before this instant, in ms, are revoked; null: none. */
  tokensNotBefore: number | null
}

/** Why an otherwise valid token of the agent is refused, or undefined when it is not. */
export function statusRefusal(
  status: AgentStatus,
  issuedAtSeconds: number,
): 'agent_inactive' | 'revoked' | undefined {
  if (!status.active) return 'agent_inactive'
  if (status.tokensNotBefore !== null && issuedAtSeconds * 1000 < status.tokensNotBefore) {
    return 'revoked'
  }
  return undefined
}

/**
 * The `iat` a token issued at `now` must carry so that an agent-wide revocation made within
 * the same second does not refuse it: the revocation's instant rounded up to a whole second.
 * That is at most one second ahead of the clock (inside any clock tolerance but zero).
 */
export function issuedAtFor(now: number, tokensNotBefore: number | null): number {
  const nowSeconds = Math.floor(now / 1000)
  if (tokensNotBefore === null) return nowSeconds
  return Math.max(nowSeconds, Math.ceil(tokensNotBefore / 1000))
}

export class AgentStatusCache {
  readonly #entries: BoundedLru<string, AgentStatus>
  readonly #ttlMs: number

  readonly #onDefect?: (err: unknown) => void

  /** `onDefect` hears of a lookup the database refused (not an outage: a bug to fix). */
  constructor(options: { maxEntries: number; ttlMs: number; onDefect?: (err: unknown) => void }) {
    this.#entries = new BoundedLru({ maxEntries: options.maxEntries })
    this.#ttlMs = options.ttlMs
    this.#onDefect = options.onDefect
  }

  /** Remembers what the token endpoint just read about the agent (saves the next lookup). */
  remember(agentId: string, status: AgentStatus, now: number): void {
    this.#entries.set(agentId, status, { now, ttlMs: this.#ttlMs, staleMs: this.#ttlMs * 10 })
  }

  /** The agent's status while a fresh answer is cached, else undefined (ask `status`). */
  fresh(agentId: string, now: number): AgentStatus | undefined {
    return this.#entries.get(agentId, now)?.value
  }

  /**
   * The agent's status: fresh from the cache, else from the database; when the database
   * fails, a stale answer, else undefined (unknown).
   */
  async status(
    db: Database,
    agentId: string,
    now: number,
    scope?: CallScope,
  ): Promise<AgentStatus | undefined> {
    const hit = this.fresh(agentId, now)
    if (hit) return hit
    try {
      const rows = await db.query<{ active: boolean; tokens_not_before_ms: string | null }>(
        sql`SELECT active, (extract(epoch FROM tokens_not_before) * 1000)::bigint AS tokens_not_before_ms
            FROM agents WHERE id = ${agentId}`,
        { ...scope, idempotent: true },
      )
      const row = rows[0]
      const status: AgentStatus = row
        ? { active: row.active, tokensNotBefore: msOrNull(row.tokens_not_before_ms) }
        : { active: false, tokensNotBefore: null }
      this.remember(agentId, status, now)
      return status
    } catch (err) {
      if (!isDatabaseOutage(err)) this.#onDefect?.(err)
      return this.#entries.getStale(agentId, now)?.value
    }
  }
}
