// POST /api/v1/agent/progress and GET /api/v1/agent/progress/batches/{batchId}
// — scope progress:write.
//
// Each route reads its validated input, makes one service call (src/progress/report.ts,
// src/progress/status.ts) and writes the answer.
import { type Context, Hono } from 'hono'
import {
  type BatchStatus,
  batchIdParam,
  batchStatus as batchStatusSchema,
  type ProgressAccepted,
  progressAccepted,
  progressBodySchema,
  progressHeaders,
  progressRequest,
} from '../contract/progress.ts'
import type { AppEnv } from '../http/context.ts'
import { respond } from '../http/headers.ts'
import { idempotencyKeyFrom } from '../http/idempotency-key.ts'
import { type Operation, problem, RATE_LIMIT, unavailable } from '../http/operation.ts'
import { requestScope } from '../http/scope.ts'
import { authorize, validate } from '../http/validate.ts'
import * as progress from '../progress/report.ts'
import { batchStatus } from '../progress/status.ts'

const BATCH_EXAMPLE_ID = '9b2e4c1a-3f5d-4e6b-8a7c-0d1e2f3a4b5c'

export const reportProgress = {
  method: 'post',
  path: '/api/v1/agent/progress',
  operationId: 'reportProgress',
  summary: 'Report progress (one update or a batch)',
  description:
    'Needs scope `progress:write` and grants for every user. The whole request is validated and grant-checked before anything is accepted (all or nothing). A `202` means durable and storable: buffered in Redis (`queued`) or committed to Postgres (`committed`: without Redis, while it fails, or while the buffer or the agent’s share of it is full). `duplicates` counts updates whose idempotency key was already accepted, whichever store took it; a key re-used for a different update is a `422` and nothing is accepted. If no durable store can take the request, `503`: `outcome_unknown` when a store timed out and may have taken it, else nothing was accepted.',
  tag: 'progress',
  scope: 'progress:write',
  request: {
    json: progressRequest,
    select: progressBodySchema,
    // `data` is stored exactly as sent: its bytes travel with the parsed value.
    jsonSources: ['data', 'updates.*.data'],
    headers: progressHeaders,
    body: {
      description: 'One update, or `{ "updates": [...] }`',
      content: {
        'application/json': {
          schema: progressRequest,
          examples: {
            single: {
              summary: 'One update',
              value: {
                user_id: 'demo-user-1',
                task_id: 'onboarding',
                status: 'in_progress',
                progress: 40,
                occurred_at: '2026-11-26T09:00:00Z',
              },
            },
            batch: {
              summary: 'A batch',
              value: {
                updates: [
                  {
                    user_id: 'demo-user-1',
                    task_id: 'onboarding',
                    status: 'completed',
                    progress: 100,
                    occurred_at: '2026-11-26T09:05:00Z',
                    idempotency_key: 'onboarding-done-1',
                  },
                ],
              },
            },
          },
        },
      },
    },
  },
  responses: {
    '202': {
      description: 'Accepted, durably',
      headers: ['Location', ...RATE_LIMIT],
      content: {
        'application/json': {
          schema: progressAccepted,
          example: { batch_id: BATCH_EXAMPLE_ID, accepted: 3, duplicates: 1, status: 'queued' },
        },
      },
    },
    '400': problem(
      ['validation_failed', 'invalid_json'],
      'Invalid body or `Idempotency-Key`: `errors` lists every field',
    ),
    '404': problem(['user_not_found'], 'A user is unknown or not granted; nothing was accepted'),
    '422': problem(
      ['idempotency_key_reused', 'update_refused'],
      'Nothing was accepted; retrying the same request will not help',
    ),
    '503': unavailable(
      ['configuration_error', 'auth_unavailable', 'progress_unavailable', 'outcome_unknown'],
      'Unavailable; retry after `Retry-After` seconds. The `code` says what was accepted: `outcome_unknown` means a store timed out and may have taken the updates (retry the same request with the same idempotency keys), every other code means nothing was.',
    ),
  },
} as const satisfies Operation

export const getProgressBatch = {
  method: 'get',
  path: '/api/v1/agent/progress/batches/:batchId',
  operationId: 'getProgressBatch',
  summary: 'Where a batch is',
  description: 'Needs scope `progress:write`; only the agent that created the batch sees it.',
  tag: 'progress',
  scope: 'progress:write',
  request: { params: batchIdParam },
  responses: {
    '200': {
      description: 'The batch',
      headers: RATE_LIMIT,
      content: {
        'application/json': {
          schema: batchStatusSchema,
          example: {
            batch_id: BATCH_EXAMPLE_ID,
            status: 'committed',
            accepted: 3,
            committed_at: '2026-11-26T09:00:05.000Z',
          },
        },
      },
    },
    '400': problem(['validation_failed'], '`batchId` holds U+0000 or an unpaired surrogate'),
    '404': problem(['not_found'], 'No such batch, or another agent’s'),
    '503': unavailable(['configuration_error', 'auth_unavailable', 'progress_unavailable']),
  },
} as const satisfies Operation

export const progressOperations: readonly Operation[] = [reportProgress, getProgressBatch]

/**
 * The operations' one service call each, for the request's authenticated principal. The MCP
 * tools `report_progress` and `get_progress_batch` make these same calls.
 */
export function acceptProgress(
  c: Context<AppEnv>,
  report: Omit<progress.ProgressReport, 'agentId'>,
): Promise<ProgressAccepted> {
  const agentId = c.get('agentId')!
  return progress.accept(c.get('services'), { ...report, agentId }, requestScope(c), c.get('log'))
}

export function readBatchStatus(c: Context<AppEnv>, batchId: string): Promise<BatchStatus> {
  return batchStatus(c.get('services'), c.get('agentId')!, batchId, requestScope(c))
}

export const progressRoutes = new Hono<AppEnv>()
  .post(reportProgress.path, authorize(reportProgress), validate(reportProgress), async (c) => {
    const request = c.req.valid('json')
    const body = await acceptProgress(c, {
      updates: 'updates' in request ? request.updates : [request],
      batch: 'updates' in request,
      idempotencyKey: idempotencyKeyFrom(c.req.header('idempotency-key')),
    })
    return respond(c, JSON.stringify(body), 202, {
      'content-type': 'application/json',
      location: `/api/v1/agent/progress/batches/${body.batch_id}`,
    })
  })
  .get(
    getProgressBatch.path,
    authorize(getProgressBatch),
    validate(getProgressBatch),
    async (c) => {
      const { batchId } = c.req.valid('param')
      const body = await readBatchStatus(c, batchId)
      return c.json(body)
    },
  )
