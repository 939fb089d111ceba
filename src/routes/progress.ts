// POST /api/v1/agent/progress and GET /api/v1/agent/progress/batches/{batchId}
// — scope progress:write.
//
// All or nothing: the whole request is validated and every user's grant checked before any
// update is taken. A 202 means durable: appended to the Redis buffer (`queued`), or, without
// Redis, committed to Postgres (`committed`). If neither store can take it: 503, nothing kept.
import { type Context, Hono } from 'hono'
import type { AppEnv } from '../context.ts'
import { sql } from '../db/client.ts'
import { requireAuth } from '../middleware/auth.ts'
import { isJsonMediaType, mediaType, parseJson } from '../middleware/body.ts'
import { requestScope } from '../platform.ts'
import { type FieldError, ProblemError, problems } from '../problem.ts'
import { flushDue, flushProgress } from '../progress/flush.ts'
import { derivedKey } from '../progress/idempotency.ts'
import type { BufferedUpdate } from '../progress/model.ts'
import {
  type BatchStatus,
  type ProgressAccepted,
  type ProgressUpdate,
  progressBatch,
  progressUpdate,
} from '../schemas/progress.ts'
import { fieldErrors } from '../validation.ts'

const MAX_FUTURE_MS = 5 * 60 * 1000

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
    if (Date.parse(u.occurred_at) > now + MAX_FUTURE_MS) {
      errors.push({
        path: `${prefix}${prefix ? `${i}.` : ''}occurred_at`,
        message: 'Must not be more than 5 minutes in the future',
      })
    }
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
    const { clock, progress, config } = services
    const agentId = c.get('agentId')!
    const { updates, prefix } = await readUpdates(c)
    const now = clock.now()
    checkTimes(updates, prefix, now)
    const keys = await withKeys(c, updates, prefix !== '')
    await checkGrants(c, updates, prefix)

    const batchId = crypto.randomUUID()
    const items: BufferedUpdate[] = updates.map((u, i) => ({
      id: crypto.randomUUID(),
      batchId,
      agentId,
      idempotencyKey: keys[i]!,
      userId: u.user_id,
      taskId: u.task_id,
      status: u.status,
      progress: u.progress,
      data: u.data === undefined ? null : JSON.stringify(u.data),
      occurredAt: new Date(Date.parse(u.occurred_at)).toISOString(),
      receivedAt: now,
    }))
    const scope = requestScope(c)

    if (progress.buffer && !services.breakers.get('redis').isOpen()) {
      try {
        const result = await progress.buffer.append({ id: batchId, agentId }, items, now, scope)
        if (!result.ok) {
          throw problems.unavailable(
            'buffer_full',
            'The progress buffer is full; nothing was accepted. Retry after the flush catches up',
            5,
          )
        }
        const t = config.tunables
        if (
          flushDue(result, now, { batchSize: t.progressBatchSize, delayMs: t.progressBatchDelayMs })
        ) {
          scope.defer?.(flushProgress(services, scope))
        }
        return accepted(c, {
          batch_id: batchId,
          accepted: result.accepted,
          duplicates: result.duplicates,
          status: 'queued',
        })
      } catch (err) {
        if (err instanceof ProblemError) throw err
        c.get('log').warn('progress buffer unavailable; committing directly', { error: err })
      }
    }

    if (progress.committer) {
      try {
        const outcome = await progress.committer.commit({ id: batchId, agentId }, items, scope)
        progress.invalidate(outcome.changedUsers, scope)
        return accepted(c, {
          batch_id: batchId,
          accepted: outcome.accepted,
          duplicates: outcome.duplicates,
          status: 'committed',
        })
      } catch (err) {
        c.get('log').warn('progress commit failed', { error: err })
      }
    }
    throw problems.unavailable(
      'progress_unavailable',
      'No durable store can take progress now; nothing was accepted',
      5,
    )
  })
  .get('/api/v1/agent/progress/batches/:batchId', requireAuth('progress:write'), async (c) => {
    const services = c.get('services')
    const batchId = c.req.param('batchId')
    if (!BATCH_ID.test(batchId)) throw problems.notFound('No such batch')
    const agentId = c.get('agentId')!
    const scope = requestScope(c)
    // A batch lives in Redis (queued, or committed by a flush) or only in Postgres (committed
    // directly while Redis was down): "no such batch" needs every configured store to say so.
    const { buffer } = services.progress
    let denials = 0

    if (buffer) {
      try {
        const record = await buffer.batch(batchId, scope)
        if (!record) denials++
        else {
          if (record.agentId !== agentId) throw problems.notFound('No such batch')
          const body: BatchStatus = {
            batch_id: batchId,
            status: record.committedAt === null ? 'queued' : 'committed',
            accepted: record.accepted,
            committed_at:
              record.committedAt === null ? null : new Date(record.committedAt).toISOString(),
          }
          return c.json(body)
        }
      } catch (err) {
        if (err instanceof ProblemError) throw err
      }
    }
    if (services.db) {
      try {
        const rows = await services.db.query<{ accepted: number; committed_at: string | null }>(
          sql`SELECT accepted, committed_at FROM progress_batches WHERE id = ${batchId} AND agent_id = ${agentId}`,
          { ...scope, idempotent: true },
        )
        const row = rows[0]
        if (!row) denials++
        else {
          const body: BatchStatus = {
            batch_id: batchId,
            status: 'committed',
            accepted: row.accepted,
            committed_at: row.committed_at ? new Date(row.committed_at).toISOString() : null,
          }
          return c.json(body)
        }
      } catch {
        // fall through: without its answer, "no such batch" cannot be said
      }
    }
    const stores = (buffer ? 1 : 0) + (services.db ? 1 : 0)
    if (stores === 0 || denials < stores)
      throw problems.unavailable('progress_unavailable', 'Batch status is unavailable', 5)
    throw problems.notFound('No such batch')
  })
