// POST /api/v1/agent/progress and GET /api/v1/agent/progress/batches/{batchId} (CONTRACT.md).
import * as z from 'zod/mini'
import { boundedString, identifier } from './common.ts'
import { storableJsonObject, storableTimestamp } from './storable.ts'

export const PROGRESS_STATUSES = [
  'not_started',
  'in_progress',
  'completed',
  'failed',
  'skipped',
] as const

export const MAX_DATA_BYTES = 4 * 1024
export const MAX_UPDATES = 100

export const progressUpdate = z.strictObject({
  user_id: identifier,
  task_id: identifier,
  status: z.enum(PROGRESS_STATUSES),
  progress: z.number().check(z.int(), z.minimum(0), z.maximum(100)),
  occurred_at: storableTimestamp,
  idempotency_key: z.optional(boundedString(1, 128)),
  data: z.optional(storableJsonObject(MAX_DATA_BYTES)),
})

export const progressBatch = z.strictObject({
  updates: z.array(progressUpdate).check(z.minLength(1), z.maxLength(MAX_UPDATES)),
})

export type ProgressUpdate = z.input<typeof progressUpdate>
export type ProgressRequest = ProgressUpdate | z.input<typeof progressBatch>

export interface ProgressAccepted {
  batch_id: string
  accepted: number
  duplicates: number
  status: 'queued' | 'committed'
}

export interface BatchStatus {
  batch_id: string
  status: 'queued' | 'committed'
  accepted: number
  committed_at: string | null
  /** Its updates held as dead letters (a store refused them); present when any are. */
  dead_letters?: number
  /** Its updates an operator discarded from the dead letters; present when any were. */
  discarded?: number
}
