// Authorization is data: an agent may act for a user only through a row in
// agent_user_grants. Answers are cached per isolate for GRANT_CACHE_TTL_MS, so a hot agent's
// cache-hit reads cost no database round trip; removing a grant takes effect within that time.
import { BoundedLru } from '../cache/lru.ts'
import { type Database, sql } from '../db/client.ts'
import type { CallScope } from '../platform.ts'

export class GrantCache {
  readonly #entries: BoundedLru<string, boolean>
  readonly #ttlMs: number

  constructor(options: { maxEntries: number; ttlMs: number }) {
    this.#entries = new BoundedLru({ maxEntries: options.maxEntries })
    this.#ttlMs = options.ttlMs
  }

  /** A cached answer, if any (including a stale one, `stale: true`, for degraded reads). */
  cached(
    agentId: string,
    userId: string,
    now: number,
  ): { granted: boolean; stale: boolean } | undefined {
    const entry = this.#entries.getStale(`${agentId}\u0000${userId}`, now)
    return entry ? { granted: entry.value, stale: now >= entry.expiresAt } : undefined
  }

  async check(
    db: Database,
    agentId: string,
    userId: string,
    now: number,
    scope?: CallScope,
  ): Promise<boolean> {
    const hit = this.cached(agentId, userId, now)
    if (hit && !hit.stale) return hit.granted
    const rows = await db.query<{ granted: boolean }>(
      sql`SELECT EXISTS (
            SELECT 1 FROM agent_user_grants g JOIN users u ON u.id = g.user_id
            WHERE g.agent_id = ${agentId} AND g.user_id = ${userId}
          ) AS granted`,
      { ...scope, idempotent: true },
    )
    const granted = rows[0]?.granted === true
    // Kept ten TTLs past freshness so a degraded read can still authorize from it.
    this.#entries.set(`${agentId}\u0000${userId}`, granted, {
      now,
      ttlMs: this.#ttlMs,
      staleMs: this.#ttlMs * 10,
    })
    return granted
  }
}
