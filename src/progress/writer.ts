// Writes a set of buffered updates in ONE Neon HTTP transaction: a multi-row insert into the
// event log (ON CONFLICT DO NOTHING: an idempotency key is applied once, whatever re-delivers
// it) and a multi-row upsert of current state that never lets an older occurred_at overwrite
// a newer one. Rows are passed as arrays through unnest(), so the statement text and its
// parameter count do not grow with the batch.
import { type CallOptions, type Database, sql } from '../db/client.ts'
import { aggregate } from './aggregate.ts'
import { type BufferedUpdate, eventKeyOf } from './model.ts'

export interface WriteResult {
  /** (agent, idempotency key) of the events this write recorded; the rest were duplicates. */
  inserted: Set<string>
  /** Users whose current state changed. */
  changedUsers: string[]
}

const iso = (ms: number) => new Date(ms).toISOString()

export async function writeUpdates(
  db: Database,
  updates: readonly BufferedUpdate[],
  call: CallOptions,
  extra: readonly ReturnType<typeof sql>[] = [],
): Promise<WriteResult> {
  if (updates.length === 0 && extra.length === 0) return { inserted: new Set(), changedUsers: [] }
  const { events, latest } = aggregate(updates)
  const col = <K extends keyof BufferedUpdate>(rows: BufferedUpdate[], key: K) =>
    rows.map((r) => r[key])

  const results = await db.transaction(
    [
      // Updates for users deleted since they were accepted are dropped, not retried forever.
      sql`INSERT INTO progress_events
            (agent_id, idempotency_key, batch_id, user_id, task_id, status, progress, data, occurred_at, received_at)
          SELECT v.* FROM unnest(
            ${col(events, 'agentId')}::text[], ${col(events, 'idempotencyKey')}::text[],
            ${col(events, 'batchId')}::text[], ${col(events, 'userId')}::text[],
            ${col(events, 'taskId')}::text[], ${col(events, 'status')}::text[],
            ${col(events, 'progress')}::smallint[], ${col(events, 'data')}::jsonb[],
            ${col(events, 'occurredAt')}::timestamptz[], ${events.map((e) => iso(e.receivedAt))}::timestamptz[]
          ) AS v(agent_id, idempotency_key, batch_id, user_id, task_id, status, progress, data, occurred_at, received_at)
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
            ${col(latest, 'data')}::jsonb[], ${col(latest, 'occurredAt')}::timestamptz[],
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
      ...extra,
    ],
    call,
  )
  const inserted = new Set(
    (results[0] ?? []).map((r) =>
      eventKeyOf({ agentId: String(r.agent_id), idempotencyKey: String(r.idempotency_key) }),
    ),
  )
  const changedUsers = [...new Set((results[1] ?? []).map((r) => String(r.user_id)))]
  return { inserted, changedUsers }
}
