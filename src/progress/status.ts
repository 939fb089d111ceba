// GET /api/v1/agent/progress/batches/{batchId}: where a batch is.
//
// Postgres is the one truth of `committed`: every batch is recorded there once all its updates
// are (a direct batch when it commits, a buffered one by the flush that writes its last
// updates), with one committed_at that never changes. Redis answers for batches still in the
// buffer. Read in that order, the status never goes backwards: Redis' `committed` carries the
// time Postgres recorded; Redis' `queued` is only believed when Postgres said "no such batch"
// (a flush may have recorded it while Redis' ack failed).

import { problems } from '../contract/problem.ts'
import type { BatchStatus } from '../contract/progress.ts'
import { sql } from '../db/client.ts'
import type { CallScope } from '../kernel/scope.ts'
import type { ProgressDeps } from './service.ts'

const iso = (value: unknown) =>
  new Date(value instanceof Date ? value.getTime() : String(value)).toISOString()

/** What a 202 names a batch by; no other value is a batch. */
const BATCH_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/**
 * Where `agentId`'s batch `batchId` is. Throws a ProblemError: 404 for no such batch (or
 * another agent's), 503 progress_unavailable when the stores that could say do not answer.
 */
export async function batchStatus(
  services: Pick<ProgressDeps, 'db' | 'progress'>,
  agentId: string,
  batchId: string,
  scope: CallScope,
): Promise<BatchStatus> {
  if (!BATCH_ID.test(batchId)) throw problems.notFound('No such batch')
  const { db, progress } = services
  const buffer = progress.buffer
  // What Postgres said: a row, "none", or nothing (not configured, or failing).
  let postgres: 'none' | 'failed' | 'absent' = db ? 'failed' : 'absent'
  if (db) {
    try {
      const rows = await db.query<{
        accepted: number
        committed_at: unknown
        discarded: number
      }>(
        sql`SELECT accepted, committed_at, discarded FROM progress_batches
            WHERE id = ${batchId} AND agent_id = ${agentId}`,
        { ...scope, idempotent: true },
      )
      const row = rows[0]
      if (row && row.committed_at !== null) {
        return {
          batch_id: batchId,
          status: 'committed',
          accepted: Number(row.accepted),
          committed_at: iso(row.committed_at),
          ...(Number(row.discarded) > 0 ? { discarded: Number(row.discarded) } : {}),
        }
      }
      postgres = 'none'
    } catch {
      // fall through to Redis: it may know the batch is committed
    }
  }

  let redis: 'none' | 'failed' | 'absent' = buffer ? 'failed' : 'absent'
  if (buffer) {
    try {
      const record = await buffer.batch(batchId, scope)
      redis = 'none'
      if (record) {
        if (record.agentId !== agentId) throw problems.notFound('No such batch')
        const extra = {
          ...(record.deadLetters > 0 ? { dead_letters: record.deadLetters } : {}),
          ...(record.discarded > 0 ? { discarded: record.discarded } : {}),
        }
        if (record.committedAt !== null) {
          return {
            batch_id: batchId,
            status: 'committed',
            accepted: record.accepted,
            committed_at: new Date(record.committedAt).toISOString(),
            ...extra,
          }
        }
        if (postgres !== 'failed') {
          return {
            batch_id: batchId,
            status: 'queued',
            accepted: record.accepted,
            committed_at: null,
            ...extra,
          }
        }
      }
    } catch (err) {
      if (err instanceof Error && err.name === 'ProblemError') throw err
    }
  }
  const nobodyAnswered = postgres !== 'none' && redis !== 'none'
  if (postgres === 'failed' || redis === 'failed' || nobodyAnswered) {
    throw problems.unavailable(
      'progress_unavailable',
      'Batch status is unavailable while the database or the buffer does not answer',
      5,
    )
  }
  throw problems.notFound('No such batch')
}
