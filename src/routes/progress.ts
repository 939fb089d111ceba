// POST /api/v1/agent/progress and GET /api/v1/agent/progress/batches/{batchId}
// — scope progress:write.
//
// All or nothing: the whole request is validated and every user's grant checked before any
// update is taken; then `acceptProgress` (src/progress/accept.ts) makes it durable or says
// honestly why not.
import { type Context, Hono } from 'hono'
import { type FieldError, ProblemError, problems } from '../contract/problem.ts'
import {
  batchIdParam,
  batchStatus as batchStatusSchema,
  type ProgressAccepted,
  type ProgressUpdate,
  progressAccepted,
  progressBodySchema,
  progressHeaders,
  progressRequest,
} from '../contract/progress.ts'
import { futureTimestampProblem, normaliseTimestamp } from '../contract/storable.ts'
import type { AppEnv } from '../http/context.ts'
import {
  authorize,
  type Operation,
  problem,
  RATE_LIMIT,
  unavailable,
  validate,
} from '../http/operation.ts'
import { requestScope } from '../http/scope.ts'
import { acceptProgress } from '../progress/accept.ts'
import { derivedKey, fingerprint } from '../progress/idempotency.ts'
import type { BufferedUpdate } from '../progress/model.ts'
import { batchStatus } from '../progress/status.ts'

function checkTimes(updates: ProgressUpdate[], prefix: string, now: number): void {
  const errors: FieldError[] = []
  updates.forEach((u, i) => {
    const problem = futureTimestampProblem(u.occurred_at, now)
    if (problem)
      errors.push({ path: `${prefix}${prefix ? `${i}.` : ''}occurred_at`, message: problem })
  })
  if (errors.length) throw problems.validation(errors)
}

async function withKeys(
  c: Context<AppEnv>,
  updates: ProgressUpdate[],
  batch: boolean,
): Promise<string[]> {
  const header = c.req.header('idempotency-key')
  if (header !== undefined) {
    if (batch) {
      throw problems.validation(
        [
          {
            path: 'Idempotency-Key',
            message: 'Applies to a single-update body; put keys in the updates',
          },
        ],
        'The Idempotency-Key header applies to a single update',
      )
    }
    if (header.length < 1 || header.length > 128) {
      throw problems.validation([
        { path: 'Idempotency-Key', message: 'Must be 1 to 128 characters' },
      ])
    }
    const own = updates[0]?.idempotency_key
    if (own !== undefined && own !== header) {
      throw problems.validation([
        { path: 'idempotency_key', message: 'Differs from the Idempotency-Key header' },
      ])
    }
    return [header]
  }
  return Promise.all(
    updates.map((u) => (u.idempotency_key ? Promise.resolve(u.idempotency_key) : derivedKey(u))),
  )
}

/** Every user must be granted; an unknown user and a foreign one are the same 404. */
async function checkGrants(
  c: Context<AppEnv>,
  updates: ProgressUpdate[],
  prefix: string,
): Promise<void> {
  const services = c.get('services')
  const agentId = c.get('agentId')!
  const now = services.clock.now()
  const { grants } = services.auth
  const users = [...new Set(updates.map((u) => u.user_id))]
  let answers: [string, boolean | undefined][]
  try {
    if (!services.db) throw new Error('no database')
    const checked = await grants.checkMany(services.db, agentId, users, now, requestScope(c))
    answers = users.map((user) => [user, checked.get(user)])
  } catch {
    // The database cannot say: a recent answer will do; none means we cannot accept.
    answers = users.map((user) => [user, grants.cached(agentId, user, now)?.granted])
  }
  if (answers.some(([, granted]) => granted === undefined)) {
    throw problems.unavailable(
      'progress_unavailable',
      'Grants cannot be checked right now; nothing was accepted',
      5,
    )
  }
  const denied = new Set(answers.filter(([, granted]) => !granted).map(([user]) => user))
  if (denied.size) {
    throw new ProblemError({
      status: 404,
      code: 'user_not_found',
      detail: 'No such user; nothing was accepted',
      errors: updates.flatMap((u, i) =>
        denied.has(u.user_id)
          ? [{ path: `${prefix}${prefix ? `${i}.` : ''}user_id`, message: 'No such user' }]
          : [],
      ),
    })
  }
}

function accepted(c: Context<AppEnv>, body: ProgressAccepted): Response {
  c.get('services').events.emit({
    type: 'progress.accepted',
    mode: body.status,
    accepted: body.accepted,
    duplicates: body.duplicates,
  })
  return c.json(body, 202, { Location: `/api/v1/agent/progress/batches/${body.batch_id}` })
}

const BATCH_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

const BATCH_EXAMPLE_ID = '9b2e4c1a-3f5d-4e6b-8a7c-0d1e2f3a4b5c'

export const reportProgress = {
  method: 'post',
  path: '/api/v1/agent/progress',
  operationId: 'reportProgress',
  summary: 'Report progress (one update or a batch)',
  description:
    'Needs scope `progress:write` and grants for every user. The whole request is validated and grant-checked before anything is accepted (all or nothing). A `202` means durable and storable: buffered in Redis (`queued`) or committed to Postgres (`committed`). `duplicates` counts updates whose idempotency key was already accepted, whichever store took it; a key re-used for a different update is a `422` and nothing is accepted. If no durable store can take the request, `503`: `outcome_unknown` when a store timed out and may have taken it, else nothing was accepted.',
  tag: 'progress',
  scope: 'progress:write',
  request: {
    json: progressRequest,
    select: progressBodySchema,
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
      ['configuration_error', 'progress_unavailable', 'buffer_full', 'outcome_unknown'],
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
    '503': unavailable(['configuration_error', 'progress_unavailable']),
  },
} as const satisfies Operation

export const progressOperations: readonly Operation[] = [reportProgress, getProgressBatch]

export const progressRoutes = new Hono<AppEnv>()
  .post(reportProgress.path, authorize(reportProgress), validate(reportProgress), async (c) => {
    const services = c.get('services')
    const agentId = c.get('agentId')!
    const request = c.req.valid('json')
    const updates = 'updates' in request ? request.updates : [request]
    const prefix = 'updates' in request ? 'updates.' : ''
    const now = services.clock.now()
    checkTimes(updates, prefix, now)
    const keys = await withKeys(c, updates, prefix !== '')
    await checkGrants(c, updates, prefix)

    const batchId = crypto.randomUUID()
    const fingerprints = await Promise.all(updates.map(fingerprint))
    const items: BufferedUpdate[] = updates.map((u, i) => ({
      id: crypto.randomUUID(),
      batchId,
      agentId,
      idempotencyKey: keys[i]!,
      fingerprint: fingerprints[i]!,
      userId: u.user_id,
      taskId: u.task_id,
      status: u.status,
      progress: u.progress,
      // Serialised once, from the value as parsed: this text is what every store keeps.
      data: u.data === undefined ? null : JSON.stringify(u.data),
      occurredAt: normaliseTimestamp(u.occurred_at),
      receivedAt: now,
    }))
    // A key given by the Idempotency-Key header is reported there.
    const header = c.req.header('idempotency-key') !== undefined
    const pathOf = (i: number, field: string) =>
      header && field === 'idempotency_key'
        ? 'Idempotency-Key'
        : `${prefix}${prefix ? `${i}.` : ''}${field}`
    const body = await acceptProgress(
      services,
      { id: batchId, agentId },
      items,
      pathOf,
      requestScope(c),
      c.get('log'),
    )
    return accepted(c, body)
  })
  .get(
    getProgressBatch.path,
    authorize(getProgressBatch),
    validate(getProgressBatch),
    async (c) => {
      const { batchId } = c.req.valid('param')
      // Storable (validated); any value that is no batch id is no batch.
      if (!BATCH_ID.test(batchId)) throw problems.notFound('No such batch')
      const body = await batchStatus(c.get('services'), c.get('agentId')!, batchId, requestScope(c))
      return c.json(body)
    },
  )
