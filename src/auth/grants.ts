// Authorization is data: an agent may act for a user only through a row in
// agent_user_grants. Answers are cached per isolate for GRANT_CACHE_TTL_MS, so a hot agent's
// cache-hit reads cost no database round trip; removing a grant takes effect within that time.
// A delegated token (RFC 8693) narrows this further: its call scope names the one user it acts
// for (`CallScope.actingFor`), and every other user is "no grant" here — the same answer as an
// unknown user — whatever the agent itself holds. Every route and tool inherits that rule by
// checking grants through this class.
import { BoundedLru } from '../cache/lru.ts'
import { type Database, sql } from '../db/client.ts'
import type { CallScope } from '../kernel/scope.ts'

export class GrantCache {
  readonly #entries: BoundedLru<string, boolean>
  readonly #ttlMs: number

  constructor(options: { maxEntries: number; ttlMs: number }) {
    this.#entries = new BoundedLru({ maxEntries: options.maxEntries })
    this.#ttlMs = options.ttlMs
  }

  /**
   * A cached answer, if any (including a stale one, `stale: true`, for degraded reads). A user
   * the scope's delegated token does not act for: `{ granted: false }`.
   */
  cached(
    agentId: string,
    userId: string,
    now: number,
    scope?: CallScope,
  ): { granted: boolean; stale: boolean } | undefined {
    if (outsideDelegation(scope, userId)) return { granted: false, stale: false }
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
    // The hot path: a fresh answer, without the batch machinery below.
    const hit = this.cached(agentId, userId, now, scope)
    if (hit && !hit.stale) return hit.granted
    const answers = await this.checkMany(db, agentId, [userId], now, scope)
    return answers.get(userId) === true
  }

  /** Every user's grant: fresh cached answers as they are, the rest in one query. */
  async checkMany(
    db: Database,
    agentId: string,
    userIds: readonly string[],
    now: number,
    scope?: CallScope,
  ): Promise<Map<string, boolean>> {
    const answers = new Map<string, boolean>()
    const missing: string[] = []
    for (const userId of new Set(userIds)) {
      // Never cached: the refusal belongs to this call's token, not to the agent.
      if (outsideDelegation(scope, userId)) {
        answers.set(userId, false)
        continue
      }
      const hit = this.cached(agentId, userId, now)
      if (hit && !hit.stale) answers.set(userId, hit.granted)
      else missing.push(userId)
    }
    if (missing.length === 0) return answers
    const rows = await db.query<{ user_id: string; granted: boolean }>(
      sql`SELECT w.user_id, EXISTS (
            SELECT 1 FROM agent_user_grants g JOIN users u ON u.id = g.user_id
            WHERE g.agent_id = ${agentId} AND g.user_id = w.user_id
          ) AS granted
          FROM unnest(${missing}::text[]) AS w(user_id)`,
      { ...scope, idempotent: true },
    )
    const granted = new Set(rows.filter((r) => r.granted === true).map((r) => r.user_id))
    for (const userId of missing) {
      const answer = granted.has(userId)
      answers.set(userId, answer)
      // Kept ten TTLs past freshness so a degraded read can still authorize from it.
      this.#entries.set(`${agentId}\u0000${userId}`, answer, {
        now,
        ttlMs: this.#ttlMs,
        staleMs: this.#ttlMs * 10,
      })
    }
    return answers
  }
}

/** A delegated call (RFC 8693) names its one user: is `userId` someone else? */
function outsideDelegation(scope: CallScope | undefined, userId: string): boolean {
  return scope?.actingFor !== undefined && scope.actingFor !== userId
}
