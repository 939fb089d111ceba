// Writes progress updates in ONE Neon HTTP transaction. One statement records the events
// (a multi-row insert into the event log, ON CONFLICT DO NOTHING on (agent, idempotency key,
// fingerprint): the same update is recorded once, whatever re-delivers it) and moves current
// state from exactly the events it recorded (chosen from the insert's RETURNING, in the same
// statement: an update that was not recorded — a duplicate, a re-delivery, a deleted user —
// can neither move state nor hide another agent's newer update of the same task). Then the
// batches' records. Rows are passed as arrays through unnest(), so the statement text and its
// parameter count do not grow with the batch.
//
// Two shapes: `writeDirect` (one request's updates, committed while it waits; a key re-used for
// another update within the dedupe window rolls everything back) and `writeFlushed` (a claim
// from the buffer).
import { type CallOptions, type Database, type Row, type SqlStatement, sql } from '../db/client.ts'
import { distinctEvents } from './aggregate.ts'
import { type BufferedUpdate, eventKeyOf } from './model.ts'

/** SQLSTATE `progress_assert_fingerprints` raises: a key re-used for another update. */
export const KEY_REUSED_SQLSTATE = 'PK422'

const iso = (ms: number) => new Date(ms).toISOString()

/**
 * Records the events and moves current state, in one statement. Current state per (user,
 * task) is the recorded event with the latest occurred_at (then received_at, idempotency key,
 * agent and fingerprint, compared as code points: a total order), and it replaces the stored
 * state only if that is older. Answers one row per recorded event (`kind = 'event'`) and one
 * per user whose state changed (`kind = 'state'`).
 */
function recordStatement(updates: readonly BufferedUpdate[]): SqlStatement {
  const events = distinctEvents(updates)
  const col = <K extends keyof BufferedUpdate>(key: K) => events.map((r) => r[key] ?? null)
  return sql`WITH v AS (
        SELECT * FROM unnest(
          ${col('agentId')}::text[], ${col('idempotencyKey')}::text[],
          ${col('fingerprint')}::text[], ${col('batchId')}::text[],
          ${col('userId')}::text[], ${col('taskId')}::text[],
          ${col('status')}::text[], ${col('progress')}::smallint[],
          ${col('data')}::json[], ${col('occurredAt')}::timestamptz[],
          ${events.map((e) => iso(e.receivedAt))}::timestamptz[]
        ) WITH ORDINALITY AS v(agent_id, idempotency_key, fingerprint, batch_id, user_id, task_id,
                               status, progress, data, occurred_at, received_at, ord)
      ),
      recorded AS (
        -- Updates for users deleted since they were accepted are dropped, not retried forever.
        INSERT INTO progress_events
          (agent_id, idempotency_key, fingerprint, batch_id, user_id, task_id, status, progress,
           data, occurred_at, received_at)
        SELECT agent_id, idempotency_key, fingerprint, batch_id, user_id, task_id, status,
               progress, data, occurred_at, received_at
        FROM v WHERE EXISTS (SELECT 1 FROM users u WHERE u.id = v.user_id)
        ORDER BY ord
        ON CONFLICT (agent_id, idempotency_key, fingerprint) DO NOTHING
        RETURNING agent_id, idempotency_key, fingerprint, user_id, task_id, status, progress,
                  data, occurred_at, received_at
      ),
      latest AS (
        SELECT DISTINCT ON (user_id, task_id) * FROM recorded
        ORDER BY user_id, task_id, occurred_at DESC, received_at DESC,
                 idempotency_key COLLATE "C" DESC, agent_id COLLATE "C" DESC,
                 fingerprint COLLATE "C" DESC NULLS LAST
      ),
      moved AS (
        INSERT INTO progress_state
          (user_id, task_id, status, progress, data, occurred_at, agent_id, updated_at)
        SELECT user_id, task_id, status, progress, data, occurred_at, agent_id, now() FROM latest
        ON CONFLICT (user_id, task_id) DO UPDATE SET
          status = EXCLUDED.status, progress = EXCLUDED.progress, data = EXCLUDED.data,
          occurred_at = EXCLUDED.occurred_at, agent_id = EXCLUDED.agent_id, updated_at = now()
        WHERE progress_state.occurred_at < EXCLUDED.occurred_at
        RETURNING user_id
      )
    SELECT 'event' AS kind, agent_id, idempotency_key, fingerprint, NULL AS user_id FROM recorded
    UNION ALL
    SELECT 'state', NULL, NULL, NULL, user_id FROM moved`
}

/** What `recordStatement` answered: the recorded events' ids and the changed users. */
function recordedOf(rows: readonly Row[] | undefined): {
  events: number
  changedUsers: string[]
} {
  let events = 0
  const users = new Set<string>()
  for (const r of rows ?? []) {
    if (r.kind === 'event') events++
    else users.add(String(r.user_id))
  }
  return { events, changedUsers: [...users] }
}

export interface DirectResult {
  accepted: number
  duplicates: number
  changedUsers: string[]
}

/**
 * Commits one request's updates and its batch record (`via = 'direct'`, committed at
 * `committedAt`). `duplicates` counts the updates whose key the API remembers for the same
 * update — accepted within `windowMs` (PROGRESS_DEDUPE_TTL_MS, as Redis remembers keys), or
 * earlier in this request, or (`buffered`, by index) already in the Redis buffer for the same
 * update, as this instance knows; every other update is `accepted` (one re-sent after its key
 * expired too, although the event log, holding it already, records it once). Every update is
 * recorded: one also in the buffer is written once, whichever copy comes first. Throws the
 * database's error; SQLSTATE `KEY_REUSED_SQLSTATE` (with the key in `detail`) when a key is recorded within
 * the window for another update: nothing is then written.
 */
export async function writeDirect(
  db: Database,
  batch: { id: string; agentId: string },
  updates: readonly BufferedUpdate[],
  committedAt: number,
  call: CallOptions,
  windowMs: number,
  buffered?: readonly boolean[],
): Promise<DirectResult> {
  const since = iso(committedAt - windowMs)
  const seen = updates.map((_, i) => buffered?.[i] === true)
  const firsts = new Set<string>()
  const first = updates.map((u) => !firsts.has(eventKeyOf(u)) && !!firsts.add(eventKeyOf(u)))
  const keys = updates.map((u) => u.idempotencyKey)
  const fps = updates.map((u) => u.fingerprint ?? null)
  const results = await db.transaction(
    [
      recordStatement(updates),
      sql`SELECT progress_assert_fingerprints(
            ${updates.map((u) => u.agentId)}::text[], ${keys}::text[], ${fps}::text[], ${since})`,
      sql`INSERT INTO progress_batches (id, agent_id, accepted, duplicates, committed_at, via)
          SELECT ${batch.id}, ${batch.agentId}, count(*) FILTER (WHERE NOT d.duplicate),
                 count(*) FILTER (WHERE d.duplicate), ${iso(committedAt)}, 'direct'
          FROM (
            SELECT NOT u.first OR u.buffered OR EXISTS (
                SELECT 1 FROM progress_events e
                WHERE e.agent_id = ${batch.agentId} AND e.idempotency_key = u.key
                  AND e.fingerprint IS NOT DISTINCT FROM u.fingerprint
                  AND e.batch_id <> ${batch.id} AND e.received_at >= ${since}
              ) AS duplicate
            FROM unnest(${keys}::text[], ${fps}::text[], ${first}::boolean[], ${seen}::boolean[])
              AS u(key, fingerprint, first, buffered)
          ) AS d
          ON CONFLICT (id) DO NOTHING
          RETURNING accepted, duplicates`,
    ],
    call,
  )
  const counts = results[2]?.[0]
  return {
    accepted: Number(counts?.accepted ?? 0),
    duplicates: Number(counts?.duplicates ?? 0),
    changedUsers: recordedOf(results[0]).changedUsers,
  }
}

/** A batch whose last outstanding updates are in this write: recorded as committed with it. */
export interface BatchRow {
  id: string
  agentId: string
  accepted: number
  duplicates: number
  discarded: number
}

export interface FlushWriteResult {
  /** Events this write recorded; the other updates were recorded already (duplicates). */
  recorded: number
  /** Users whose current state changed. */
  changedUsers: string[]
  /** Batches recorded as committed, with the committed_at Postgres holds for each (ms). */
  committed: Map<string, number>
}

/**
 * Writes claimed items and records `batches` as committed at `committedAt` — or at the time
 * already recorded, so a batch's committed_at never changes.
 */
export async function writeFlushed(
  db: Database,
  updates: readonly BufferedUpdate[],
  batches: readonly BatchRow[],
  committedAt: number,
  call: CallOptions,
): Promise<FlushWriteResult> {
  if (updates.length === 0 && batches.length === 0) {
    return { recorded: 0, changedUsers: [], committed: new Map() }
  }
  const statements = [recordStatement(updates)]
  if (batches.length) statements.push(recordBatches(batches, committedAt))
  const results = await db.transaction(statements, call)
  const { events, changedUsers } = recordedOf(results[0])
  return { recorded: events, changedUsers, committed: committedOf(results[1]) }
}

/**
 * Records buffered batches as committed at `committedAt` (a time each, or one for all),
 * keeping a committed_at already recorded.
 */
export function recordBatches(
  batches: readonly BatchRow[],
  committedAt: number | readonly number[],
): SqlStatement {
  const at = batches.map((_, i) =>
    iso(typeof committedAt === 'number' ? committedAt : committedAt[i]!),
  )
  return sql`INSERT INTO progress_batches (id, agent_id, accepted, duplicates, discarded, committed_at, via)
      SELECT b.id, b.agent_id, b.accepted, b.duplicates, b.discarded, b.committed_at, 'buffer'
      FROM unnest(${batches.map((b) => b.id)}::text[], ${batches.map((b) => b.agentId)}::text[],
                  ${batches.map((b) => b.accepted)}::int[], ${batches.map((b) => b.duplicates)}::int[],
                  ${batches.map((b) => b.discarded)}::int[], ${at}::timestamptz[])
        AS b(id, agent_id, accepted, duplicates, discarded, committed_at)
      ON CONFLICT (id) DO UPDATE SET
        committed_at = coalesce(progress_batches.committed_at, EXCLUDED.committed_at),
        discarded = greatest(progress_batches.discarded, EXCLUDED.discarded)
      RETURNING id, committed_at`
}

/** Batch id → the committed_at (ms) Postgres holds, from `recordBatches`' answer. */
export function committedOf(rows: readonly Row[] | undefined): Map<string, number> {
  const committed = new Map<string, number>()
  for (const row of rows ?? []) {
    const at = row.committed_at
    committed.set(String(row.id), at instanceof Date ? at.getTime() : Date.parse(String(at)))
  }
  return committed
}
