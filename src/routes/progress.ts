// POST /api/v1/agent/progress and GET /api/v1/agent/progress/batches/{batchId}
// — scope progress:write.
//
// All or nothing: the whole request is validated and every user's grant checked before any
// update is taken; then `acceptProgress` (src/progress/accept.ts) makes it durable or says
// honestly why not.
import { type Context, Hono } from 'hono'
import { fieldErrors } from '../contract/field-errors.ts'
import { type FieldError, ProblemError, problems } from '../contract/problem.ts'
import {
  type ProgressAccepted,
  type ProgressUpdate,
  progressBatch,
  progressUpdate,
} from '../contract/progress.ts'
import {
  futureTimestampProblem,
  normaliseTimestamp,
  unstorableReason,
} from '../contract/storable.ts'
import { requireAuth } from '../http/auth.ts'
import { isJsonMediaType, mediaType, parseJson } from '../http/body.ts'
import type { AppEnv } from '../http/context.ts'
import { requestScope } from '../http/scope.ts'
import { acceptProgress } from '../progress/accept.ts'
import { derivedKey, fingerprint } from '../progress/idempotency.ts'
import type { BufferedUpdate } from '../progress/model.ts'
import { batchStatus } from '../progress/status.ts'

/** The body as a list of updates, each with the path prefix its errors are reported under. */
async function readUpdates(
  c: Context<AppEnv>,
): Promise<{ updates: ProgressUpdate[]; prefix: string }> {
  if (!isJsonMediaType(mediaType(c.req.header('content-type')))) {
    throw problems.unsupportedMediaType(['application/json'])
  }
  const body = parseJson(await c.req.text())
  const batch =
    body !== null && typeof body === 'object' && !Array.isArray(body) && 'updates' in body
  const result = batch ? progressBatch.safeParse(body) : progressUpdate.safeParse(body)
  if (!result.success) throw problems.validation(fieldErrors(result.error.issues))
  const updates = 'updates' in result.data ? result.data.updates : [result.data]
  return { updates, prefix: batch ? 'updates.' : '' }
}

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

export const progressRoutes = new Hono<AppEnv>()
  .post('/api/v1/agent/progress', requireAuth('progress:write'), async (c) => {
    const services = c.get('services')
    const agentId = c.get('agentId')!
    const { updates, prefix } = await readUpdates(c)
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
  .get('/api/v1/agent/progress/batches/:batchId', requireAuth('progress:write'), async (c) => {
    const batchId = c.req.param('batchId')
    // Storable input: unstorable is a 400 (CONTRACT.md); any other non-batch id is no batch.
    const unstorable = unstorableReason(batchId)
    if (unstorable)
      throw problems.validation(
        [{ path: 'batchId', message: unstorable }],
        'A path parameter is not valid',
      )
    if (!BATCH_ID.test(batchId)) throw problems.notFound('No such batch')
    const body = await batchStatus(c.get('services'), c.get('agentId')!, batchId, requestScope(c))
    return c.json(body)
  })
