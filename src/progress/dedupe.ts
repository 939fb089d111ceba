// One dedupe truth across both stores.
//
// Redis remembers each accepted key (with its fingerprint) for PROGRESS_DEDUPE_TTL_MS, so the
// buffered path answers `duplicates` without asking Postgres. Keys committed straight to
// Postgres while Redis could not take them are unknown to Redis until they are copied there
// (`syncDirectCommits`, run by the flush). Until then, a request on the buffered path looks its
// keys up in Postgres first. Whether that is needed ("are there direct batches not yet
// synced?") is one indexed query per isolate every PROGRESS_DIRECT_CHECK_TTL_MS, refreshed in
// the background, so the steady state costs no Postgres round trip per request.
//
// The bound that remains: another isolate's direct commit is seen here within the check's
// TTL. A key committed directly there and re-sent here sooner is counted `accepted` again (the
// event log still holds the update once), and a different update under it is accepted too and
// recorded as its own event (src/progress/writer.ts): a 202 is never undone at flush time.
//
// Keys are remembered for PROGRESS_DEDUPE_TTL_MS from when they were first accepted, in both
// stores: Redis by the key's expiry, Postgres by the event's received_at.
import { type Database, sql } from '../db/client.ts'
import type { CallScope } from '../kernel/scope.ts'
import type { ProgressBuffer } from './buffer.ts'
import type { KnownKey } from './idempotency.ts'
import { type BufferedUpdate, eventKeyOf } from './model.ts'

/** Answers are read from Postgres with this deadline at most: they never hold a request long. */
const CHECK_TIMEOUT_MS = 1000

export class DirectCommits {
  readonly #db: Database | undefined
  readonly #now: () => number
  readonly #ttlMs: number
  readonly #windowMs: number
  readonly #timeoutMs: number
  #state: { unsynced: boolean; at: number } | undefined
  #refreshing = false

  constructor(options: {
    db?: Database
    now: () => number
    /** How long one answer is trusted (PROGRESS_DIRECT_CHECK_TTL_MS). */
    ttlMs: number
    /** How far back keys matter: Redis' dedupe TTL. */
    windowMs: number
    timeoutMs: number
  }) {
    this.#db = options.db
    this.#now = options.now
    this.#ttlMs = options.ttlMs
    this.#windowMs = options.windowMs
    this.#timeoutMs = Math.min(options.timeoutMs, CHECK_TIMEOUT_MS)
  }

  /** This isolate committed directly: Redis lacks some keys from now on. */
  noteDirectCommit(): void {
    this.#state = { unsynced: true, at: this.#now() }
  }

  /** A sync that began at `startedAt` copied every pending direct key to Redis. */
  noteSynced(startedAt: number): void {
    if (!this.#state || this.#state.at <= startedAt) {
      this.#state = { unsynced: false, at: startedAt }
    }
  }

  /**
   * Whether a buffered request must look its keys up in Postgres. A cold isolate asks for
   * itself (its own query, short deadline); a stale answer is used while a background
   * refresh (one at a time, awaited by nobody) replaces it. Unanswerable → false: the
   * request then relies on Redis' dedupe alone.
   */
  async mustLookUp(scope: CallScope): Promise<boolean> {
    if (!this.#db) return false
    const state = this.#state
    const now = this.#now()
    if (state && now - state.at < this.#ttlMs) return state.unsynced
    if (state) {
      if (!this.#refreshing) {
        this.#refreshing = true
        const refresh = this.#check(scope).finally(() => {
          this.#refreshing = false
        })
        scope.defer?.(refresh)
      }
      return state.unsynced
    }
    return this.#check(scope)
  }

  async #check(scope: CallScope): Promise<boolean> {
    const startedAt = this.#now()
    try {
      const rows = await this.#db!.query<{ unsynced: boolean }>(
        sql`SELECT EXISTS (
              SELECT 1 FROM progress_batches
              WHERE via = 'direct' AND synced_at IS NULL
                AND committed_at > ${new Date(startedAt - this.#windowMs).toISOString()}
            ) AS unsynced`,
        { ...scope, timeoutMs: this.#timeoutMs },
      )
      const unsynced = rows[0]?.unsynced === true
      // A direct commit noted meanwhile is newer news than this read.
      if (!this.#state || this.#state.at <= startedAt) this.#state = { unsynced, at: startedAt }
      return this.#state.unsynced
    } catch {
      // Unknown: keep what we knew; a cold isolate relies on Redis alone until the next try.
      if (!this.#state) this.#state = { unsynced: false, at: startedAt }
      return this.#state.unsynced
    }
  }
}

/**
 * The keys among `keys` Postgres holds for `agentId` within the dedupe window (accepted since
 * `now - windowMs`), as event keys (`eventKeyOf`) → what it remembers ('committed' stands for
 * an event recorded before fingerprints existed).
 */
export async function lookUpKeys(
  db: Database,
  agentId: string,
  keys: readonly string[],
  scope: CallScope,
  timeoutMs: number,
  now: number,
  windowMs: number,
): Promise<Map<string, KnownKey>> {
  const rows = await db.query<{
    idempotency_key: string
    fingerprint: string | null
    received_at: unknown
  }>(
    sql`SELECT idempotency_key, fingerprint, received_at FROM progress_events
        WHERE agent_id = ${agentId} AND idempotency_key = ANY(${[...new Set(keys)]}::text[])
          AND received_at >= ${new Date(now - windowMs).toISOString()}`,
    { ...scope, timeoutMs: Math.min(timeoutMs, CHECK_TIMEOUT_MS) },
  )
  const known = new Map<string, KnownKey>()
  for (const r of rows) {
    const key = eventKeyOf({ agentId, idempotencyKey: r.idempotency_key })
    const at =
      r.received_at instanceof Date ? r.received_at.getTime() : Date.parse(String(r.received_at))
    const entry = known.get(key) ?? { fingerprints: [], until: at + windowMs }
    entry.fingerprints.push(r.fingerprint ?? 'committed')
    entry.until = Math.min(entry.until, at + windowMs)
    known.set(key, entry)
  }
  return known
}

/**
 * Right after a direct commit, copies that batch's keys into Redis' dedupe and marks it synced,
 * so a Redis that only hiccuped leaves nothing for buffered requests to look up. Rejects when
 * Redis (or Postgres) cannot do it now; the flush's sync catches up later.
 */
export async function syncBatch(
  db: Database,
  buffer: ProgressBuffer,
  batchId: string,
  updates: readonly BufferedUpdate[],
  now: number,
  scope: CallScope,
): Promise<void> {
  await buffer.rememberKeys(
    updates.map((u) => ({
      agentId: u.agentId,
      idempotencyKey: u.idempotencyKey,
      fingerprint: u.fingerprint ?? null,
      receivedAt: u.receivedAt,
    })),
    now,
    scope,
  )
  await db.query(sql`UPDATE progress_batches SET synced_at = now() WHERE id = ${batchId}`, scope)
}

const SYNC_BATCHES = 100

/**
 * Copies the keys of direct batches (within the dedupe window) into Redis' dedupe, then marks
 * those batches synced. Returns how many batches it synced and whether any remain.
 */
export async function syncDirectCommits(
  db: Database,
  buffer: ProgressBuffer,
  now: number,
  windowMs: number,
  scope: CallScope,
): Promise<{ synced: number; more: boolean }> {
  const since = new Date(now - windowMs).toISOString()
  const rows = await db.query<{
    id: string
    agent_id: string | null
    idempotency_key: string | null
    fingerprint: string | null
    received_at: unknown
  }>(
    sql`WITH b AS (
          SELECT id FROM progress_batches
          WHERE via = 'direct' AND synced_at IS NULL AND committed_at > ${since}
          ORDER BY committed_at LIMIT ${SYNC_BATCHES + 1})
        SELECT b.id, e.agent_id, e.idempotency_key, e.fingerprint, e.received_at
        FROM b LEFT JOIN progress_events e ON e.batch_id = b.id`,
    scope,
  )
  const batches = [...new Set(rows.map((r) => r.id))]
  const chosen = new Set(batches.slice(0, SYNC_BATCHES))
  const keys = rows.flatMap((r) =>
    chosen.has(r.id) && r.agent_id !== null && r.idempotency_key !== null
      ? [
          {
            agentId: r.agent_id,
            idempotencyKey: r.idempotency_key,
            fingerprint: r.fingerprint,
            receivedAt:
              r.received_at instanceof Date
                ? r.received_at.getTime()
                : Date.parse(String(r.received_at)),
          },
        ]
      : [],
  )
  if (chosen.size === 0) return { synced: 0, more: false }
  await buffer.rememberKeys(keys, now, scope)
  await db.query(
    sql`UPDATE progress_batches SET synced_at = now() WHERE id = ANY(${[...chosen]}::text[])`,
    scope,
  )
  return { synced: chosen.size, more: batches.length > SYNC_BATCHES }
}
