// POST /api/v1/agent/progress and GET /api/v1/agent/progress/batches/{batchId} (CONTRACT.md),
// and the flush report of POST /api/v1/internal/flush.
import * as z from 'zod/mini'
import { boundedString, count, identifier, instant, onFirstUse } from './common.ts'
import {
  MAX_JSON_DEPTH,
  storableJsonObject,
  storableParam,
  storableString,
  storableTimestamp,
} from './storable.ts'

export const PROGRESS_STATUSES = [
  'not_started',
  'in_progress',
  'completed',
  'failed',
  'skipped',
] as const
export type ProgressStatus = (typeof PROGRESS_STATUSES)[number]

export const MAX_DATA_BYTES = 4 * 1024
export const MAX_UPDATES = 100

export const progressUpdate = z
  .strictObject({
    user_id: identifier.check(z.describe('A user the agent holds a grant for.')),
    task_id: identifier.check(z.describe('The task, 1–128 characters.')),
    status: z.enum(PROGRESS_STATUSES),
    progress: z
      .number()
      .check(z.int(), z.minimum(0), z.maximum(100), z.describe('Percent complete.')),
    occurred_at: storableTimestamp.check(
      z.describe(
        'RFC 3339 with an offset; at most 5 minutes in the future. The latest `occurred_at` wins the stored state.',
      ),
    ),
    idempotency_key: z.optional(
      boundedString(1, 128).check(
        z.describe(
          'Deduplicates retries; derived from the update’s content when absent. With a single-update body, the `Idempotency-Key` header may carry it (they must agree).',
        ),
      ),
    ),
    data: z.optional(
      storableJsonObject(MAX_DATA_BYTES).check(
        z.describe(
          `Free-form JSON object, stored exactly as sent (the bytes: number spellings, duplicate keys, key order and whitespace are kept): at most ${MAX_DATA_BYTES} bytes as sent and nested at most ${MAX_JSON_DEPTH} levels; no string in it (key or value, a repeated key's earlier value included) may contain U+0000 or an unpaired surrogate.`,
        ),
      ),
    ),
  })
  .register(z.globalRegistry, {
    id: 'ProgressUpdate',
    description: 'One progress report on one task of one user.',
  })

export const progressBatch = z
  .strictObject({
    updates: z.array(progressUpdate).check(z.minLength(1), z.maxLength(MAX_UPDATES)),
  })
  .register(z.globalRegistry, {
    id: 'ProgressBatch',
    description: `1 to ${MAX_UPDATES} updates, validated and grant-checked together: all or nothing.`,
  })

/** The body: one update, or a batch of them. */
export const progressRequest = z.xor([progressUpdate, progressBatch])

/**
 * Which of the two a body is meant to be, so a failure is explained in its terms: an object
 * with `updates` is a batch (its errors read `updates.3.progress`), anything else one update.
 */
export function progressBodySchema(body: unknown): typeof progressUpdate | typeof progressBatch {
  const batch =
    body !== null && typeof body === 'object' && !Array.isArray(body) && 'updates' in body
  return batch ? progressBatch : progressUpdate
}

export type ProgressUpdate = z.input<typeof progressUpdate>

/** The request headers the route reads. */
export const progressHeaders = onFirstUse(() =>
  z.object({
    'Idempotency-Key': z.optional(
      storableString(1, 128).check(
        z.describe(
          'Single-update bodies only (a batch carries keys in its updates): 1–128 characters; must equal the update’s `idempotency_key` if it has one. draft-ietf-httpapi-idempotency-key-header: the same key with a different update is a `422`.',
        ),
      ),
    ),
  }),
)
const batchState = z.enum(['queued', 'committed'])

export const progressAccepted = onFirstUse(() =>
  z
    .strictObject({
      batch_id: z.uuid(),
      accepted: count().check(z.describe('Updates newly accepted.')),
      duplicates: count().check(z.describe('Updates whose idempotency key was already seen.')),
      status: batchState.check(
        z.describe(
          '`queued`: durably buffered (Redis), flushed to Postgres later; `committed`: already in Postgres.',
        ),
      ),
    })
    .register(z.globalRegistry, {
      id: 'ProgressAccepted',
      description: 'The updates are durable.',
    }),
)
export type ProgressAccepted = z.output<ReturnType<typeof progressAccepted>>

export const batchIdParam = z
  .strictObject({
    batchId: storableParam().check(
      z.describe(
        'The `batch_id` of a 202 (a UUID; any other storable value is no batch: 404). Only the agent that created the batch sees it.',
      ),
    ),
  })
  .register(z.globalRegistry, { id: 'BatchId' })

export const batchStatus = onFirstUse(() =>
  z
    .strictObject({
      batch_id: z.uuid(),
      status: batchState,
      accepted: count(),
      committed_at: z.nullable(instant()),
      dead_letters: z.optional(
        count().check(
          z.describe('Updates of the batch a store refused at flush time, held as dead letters.'),
        ),
      ),
      discarded: z.optional(
        count().check(
          z.describe('Updates of the batch an operator discarded from the dead letters.'),
        ),
      ),
    })
    .register(z.globalRegistry, {
      id: 'BatchStatus',
      description:
        'Where a batch of accepted updates is. Monotonic: once `committed`, always `committed` with the same `committed_at`, and recorded in Postgres (it does not expire). A batch stays `queued` while one of its updates is a dead letter, and a batch of duplicates until the updates it repeats are in Postgres; when an operator discards a dead letter, the batch is `committed` with `discarded` counting what was dropped.',
    }),
)
export type BatchStatus = z.output<ReturnType<typeof batchStatus>>

export const flushReport = onFirstUse(() =>
  z
    .strictObject({
      flushed: count(),
      remaining: z
        .nullable(count())
        .check(
          z.describe(
            'Updates still buffered after the drain (null when they could not be counted).',
          ),
        ),
      dead_letters: z
        .nullable(count())
        .check(
          z.describe(
            'Updates held as dead letters (a store refused them; see the health report), null when they could not be counted.',
          ),
        ),
      skipped: z.optional(
        z
          .enum(['no_buffer', 'no_database', 'lease_held', 'circuit_open'])
          .check(z.describe('Why nothing was flushed, when nothing was.')),
      ),
    })
    .register(z.globalRegistry, {
      id: 'FlushReport',
      description: 'What one drain of the progress buffer did.',
    }),
)
export type FlushReport = z.output<ReturnType<typeof flushReport>>
