// Writes progress updates in ONE Neon HTTP transaction: a multi-row insert into the event log
// (ON CONFLICT DO NOTHING: an idempotency key is applied once, whatever re-delivers it), a
// multi-row upsert of current state that never lets an older occurred_at overwrite a newer
// one, and the batches' records. Rows are passed as arrays through unnest(), so the statement
// text and its parameter count do not grow with the batch.
//
// Two shapes: `writeDirect` (one request's updates, committed while it waits; a key re-used
// for another update rolls everything back) and `writeFlushed` (a claim from the buffer; a
// re-used key is reported, its item having changed nothing).
import { type CallOptions, type Database, type SqlStatement, sql } from '../db/client.ts'
import { aggregate } from './aggregate.ts'
import { type BufferedUpdate, eventKeyOf } from './model.ts'

/** SQLSTATE `progress_assert_fingerprints` raises: a key re-used for another update. */
export const KEY_REUSED_SQLSTATE = 'PK422'

const iso = (ms: number) => new Date(ms).toISOString()

function eventStatements(updates: readonly BufferedUpdate[]): SqlStatement[] {
  const { events, latest } = aggregate(updates)
  const col = <K extends keyof BufferedUpdate>(rows: BufferedUpdate[], key: K) =>
    rows.map((r) => r[key] ?? null)
  return [
    // Updates for users deleted since they were accepted are dropped, not retried forever.
    sql`INSERT INTO progress_events
          (agent_id, idempotency_key, fingerprint, batch_id, user_id, task_id, status, progress,
           data, occurred_at, received_at)
        SELECT v.* FROM unnest(
          ${col(events, 'agentId')}::text[], ${col(events, 'idempotencyKey')}::text[],
          ${col(events, 'fingerprint')}::text[], ${col(events, 'batchId')}::text[],
          ${col(events, 'userId')}::text[], ${col(events, 'taskId')}::text[],
          ${col(events, 'status')}::text[], ${col(events, 'progress')}::smallint[],
          ${col(events, 'data')}::json[], ${col(events, 'occurredAt')}::timestamptz[],
          ${events.map((e) => iso(e.receivedAt))}::timestamptz[]
        ) AS v(agent_id, idempotency_key, fingerprint, batch_id, user_id, task_id, status,
               progress, data, occurred_at, received_at)
        WHERE EXISTS (SELECT 1 FROM users u WHERE u.id = v.user_id)
        ON CONFLICT (agent_id, idempotency_key) DO NOTHING
        RETURNING agent_id, idempotency_key`,
    // Only an update recorded under its own batch moves current state: a duplicate that
    // reached the buffer again (re-delivery, an expired dedupe key) changes nothing.
    sql`INSERT INTO progress_state (user_id, task_id, status, progress, data, occurred_at, agent_id, updated_at)
        SELECT v.user_id, v.task_id, v.status, v.progress, v.data, v.occurred_at, v.agent_id, now()
        FROM unnest(
          ${col(latest, 'userId')}::text[], ${col(latest, 'taskId')}::text[],
          ${col(latest, 'status')}::text[], ${col(latest, 'progress')}::smallint[],
          ${col(latest, 'data')}::json[], ${col(latest, 'occurredAt')}::timestamptz[],
          ${col(latest, 'agentId')}::text[], ${col(latest, 'idempotencyKey')}::text[],
          ${col(latest, 'batchId')}::text[]
        ) AS v(user_id, task_id, status, progress, data, occurred_at, agent_id, idempotency_key, batch_id)
        WHERE EXISTS (
          SELECT 1 FROM progress_events e
          WHERE e.agent_id = v.agent_id AND e.idempotency_key = v.idempotency_key AND e.batch_id = v.batch_id)
        ON CONFLICT (user_id, task_id) DO UPDATE SET
          status = EXCLUDED.status, progress = EXCLUDED.progress, data = EXCLUDED.data,
          occurred_at = EXCLUDED.occurred_at, agent_id = EXCLUDED.agent_id, updated_at = now()
        WHERE progress_state.occurred_at < EXCLUDED.occurred_at
        RETURNING user_id`,
  ]
}

const insertedKeys = (rows: readonly Record<string, unknown>[] | undefined) =>
  new Set(
    (rows ?? []).map((r) =>
      eventKeyOf({ agentId: String(r.agent_id), idempotencyKey: String(r.idempotency_key) }),
    ),
  )

const changedUsersOf = (rows: readonly Record<string, unknown>[] | undefined) => [
  ...new Set((rows ?? []).map((r) => String(r.user_id))),
]

export interface DirectResult {
  accepted: number
  duplicates: number
  changedUsers: string[]
}

/**
 * Commits one request's updates and its batch record (`via = 'direct'`, committed at
 * `committedAt`). Throws the database's error; SQLSTATE `KEY_REUSED_SQLSTATE` (with the key
 * in `detail`) when a key is already recorded for another update: nothing is then written.
 */
export async function writeDirect(
  db: Database,
  batch: { id: string; agentId: string },
  updates: readonly BufferedUpdate[],
  committedAt: number,
  call: CallOptions,
): Promise<DirectResult> {
  const [insert, state] = eventStatements(updates)
  const results = await db.transaction(
    [
      insert!,
      sql`SELECT progress_assert_fingerprints(
            ${updates.map((u) => u.agentId)}::text[], ${updates.map((u) => u.idempotencyKey)}::text[],
            ${updates.map((u) => u.fingerprint ?? null)}::text[])`,
      state!,
      sql`INSERT INTO progress_batches (id, agent_id, accepted, duplicates, committed_at, via)
          SELECT ${batch.id}, ${batch.agentId}, n, ${updates.length}::int - n, ${iso(committedAt)}, 'direct'
          FROM (SELECT count(*)::int AS n FROM progress_events WHERE batch_id = ${batch.id}) AS c
          ON CONFLICT (id) DO NOTHING`,
    ],
    call,
  )
  const inserted = insertedKeys(results[0])
  // In request order, the first holder of a key is the one whose event was inserted.
  let accepted = 0
  const claimed = new Set<string>()
  for (const u of updates) {
    const key = eventKeyOf(u)
    if (inserted.has(key) && !claimed.has(key)) {
      claimed.add(key)
      accepted++
    }
  }
  return {
    accepted,
    duplicates: updates.length - accepted,
    changedUsers: changedUsersOf(results[2]),
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
  /** (agent, idempotency key) of the events this write recorded; the rest were duplicates. */
  inserted: Set<string>
  /** Users whose current state changed. */
  changedUsers: string[]
  /** Items whose key was already recorded for another update: they changed nothing. */
  reused: Set<string>
  /** Batches recorded as committed, with the committed_at Postgres holds for each (ms). */
  committed: Map<string, number>
}

/**
 * Writes claimed items and records `batches` as committed at `committedAt` — or at the time
 * already recorded, so a batch's committed_at never changes. A batch with a re-used key
 * among these items is not recorded (that item is not committed).
 */
export async function writeFlushed(
  db: Database,
  updates: readonly BufferedUpdate[],
  batches: readonly BatchRow[],
  committedAt: number,
  call: CallOptions,
): Promise<FlushWriteResult> {
  if (updates.length === 0 && batches.length === 0) {
    return { inserted: new Set(), changedUsers: [], reused: new Set(), committed: new Map() }
  }
  const [insert, state] = eventStatements(updates)
  const ids = updates.map((u) => u.id)
  const batchIds = updates.map((u) => u.batchId)
  const agents = updates.map((u) => u.agentId)
  const keys = updates.map((u) => u.idempotencyKey)
  const fps = updates.map((u) => u.fingerprint ?? null)
  const statements = [
    insert!,
    sql`SELECT v.id FROM unnest(${ids}::text[], ${agents}::text[], ${keys}::text[], ${fps}::text[])
          AS v(id, agent_id, key, fingerprint)
        JOIN progress_events e ON e.agent_id = v.agent_id AND e.idempotency_key = v.key
        WHERE e.fingerprint IS NOT NULL AND v.fingerprint IS NOT NULL AND e.fingerprint <> v.fingerprint`,
    state!,
  ]
  if (batches.length) {
    statements.push(
      sql`INSERT INTO progress_batches (id, agent_id, accepted, duplicates, discarded, committed_at, via)
          SELECT b.id, b.agent_id, b.accepted, b.duplicates, b.discarded, ${iso(committedAt)}, 'buffer'
          FROM unnest(${batches.map((b) => b.id)}::text[], ${batches.map((b) => b.agentId)}::text[],
                      ${batches.map((b) => b.accepted)}::int[], ${batches.map((b) => b.duplicates)}::int[],
                      ${batches.map((b) => b.discarded)}::int[])
            AS b(id, agent_id, accepted, duplicates, discarded)
          WHERE NOT EXISTS (
            SELECT 1 FROM unnest(${batchIds}::text[], ${agents}::text[], ${keys}::text[], ${fps}::text[])
              AS v(batch_id, agent_id, key, fingerprint)
            JOIN progress_events e ON e.agent_id = v.agent_id AND e.idempotency_key = v.key
            WHERE v.batch_id = b.id AND e.fingerprint IS NOT NULL AND v.fingerprint IS NOT NULL
              AND e.fingerprint <> v.fingerprint)
          ON CONFLICT (id) DO UPDATE SET committed_at = coalesce(progress_batches.committed_at, EXCLUDED.committed_at)
          RETURNING id, committed_at`,
    )
  }
  const results = await db.transaction(statements, call)
  const committed = new Map<string, number>()
  for (const row of results[3] ?? []) {
    const at = row.committed_at
    committed.set(String(row.id), at instanceof Date ? at.getTime() : Date.parse(String(at)))
  }
  return {
    inserted: insertedKeys(results[0]),
    changedUsers: changedUsersOf(results[2]),
    reused: new Set((results[1] ?? []).map((r) => String(r.id))),
    committed,
  }
}
