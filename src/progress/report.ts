// Reporting progress (POST /api/v1/agent/progress): the rules of a request, before and after
// the stores. All or nothing: every update's time, every idempotency key and every user's
// grant is checked before any update is taken; then `acceptProgress` (./accept.ts) makes them
// durable or says honestly why not.
import type { AuthState } from '../auth/state.ts'
import { jsonText } from '../contract/json-source.ts'
import { type FieldError, ProblemError, problems } from '../contract/problem.ts'
import type { ProgressAccepted, ProgressUpdate } from '../contract/progress.ts'
import { futureTimestampProblem, normaliseTimestamp } from '../contract/storable.ts'
import type { Logger } from '../kernel/log.ts'
import type { CallScope } from '../kernel/scope.ts'
import { acceptProgress } from './accept.ts'
import { derivedKey, fingerprint } from './idempotency.ts'
import type { BufferedUpdate } from './model.ts'
import type { ProgressDeps } from './service.ts'

/** What reporting uses: the progress machinery, and the agents' grants. */
export interface ReportDeps extends ProgressDeps {
  auth: Pick<AuthState, 'grants'>
}

/** A validated request body, as the agent sent it. */
export interface ProgressReport {
  agentId: string
  updates: readonly ProgressUpdate[]
  /** Sent as `{ updates: [...] }` (errors then read `updates.3.progress`). */
  batch: boolean
  /** The `Idempotency-Key` header, if sent. */
  idempotencyKey?: string
}

/**
 * Accepts a report: `queued` (the Redis buffer) or `committed` (Postgres), with how many
 * updates were new and how many duplicates. Throws a ProblemError for every other answer:
 * 400 (a time too far ahead, a bad Idempotency-Key), 404 user_not_found (an unknown or
 * foreign user), 422 (a key re-used for another update), 503 (no store can take it; its code
 * says whether anything may have been).
 */
export async function accept(
  deps: ReportDeps,
  report: ProgressReport,
  scope: CallScope,
  log: Logger,
): Promise<ProgressAccepted> {
  const { updates, agentId } = report
  const at = (i: number, field: string) => (report.batch ? `updates.${i}.${field}` : field)
  const now = deps.clock.now()
  checkTimes(updates, at, now)
  const keys = await withKeys(updates, report.batch, report.idempotencyKey)
  await checkGrants(deps, agentId, updates, at, now, scope)

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
    // The text every store keeps: the bytes the agent sent (kept by the body parser), or — for
    // a value that arrived parsed, e.g. through MCP — JSON.stringify's (src/contract/json-source.ts).
    data: u.data === undefined ? null : jsonText(u.data),
    occurredAt: normaliseTimestamp(u.occurred_at),
    receivedAt: now,
  }))
  // A key given by the Idempotency-Key header is reported there.
  const header = report.idempotencyKey !== undefined
  const pathOf = (i: number, field: string) =>
    header && field === 'idempotency_key' ? 'Idempotency-Key' : at(i, field)
  const body = await acceptProgress(deps, { id: batchId, agentId }, items, pathOf, scope, log)
  deps.events.emit({
    type: 'progress.accepted',
    mode: body.status,
    accepted: body.accepted,
    duplicates: body.duplicates,
  })
  return body
}

type At = (index: number, field: string) => string

function checkTimes(updates: readonly ProgressUpdate[], at: At, now: number): void {
  const errors: FieldError[] = []
  updates.forEach((u, i) => {
    const problem = futureTimestampProblem(u.occurred_at, now)
    if (problem) errors.push({ path: at(i, 'occurred_at'), message: problem })
  })
  if (errors.length) throw problems.validation(errors)
}

/** Each update's key: the header's (single updates only), its own, or one derived from it. */
async function withKeys(
  updates: readonly ProgressUpdate[],
  batch: boolean,
  header: string | undefined,
): Promise<string[]> {
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
  deps: ReportDeps,
  agentId: string,
  updates: readonly ProgressUpdate[],
  at: At,
  now: number,
  scope: CallScope,
): Promise<void> {
  const { grants } = deps.auth
  const users = [...new Set(updates.map((u) => u.user_id))]
  let answers: [string, boolean | undefined][]
  try {
    if (!deps.db) throw new Error('no database')
    const checked = await grants.checkMany(deps.db, agentId, users, now, scope)
    answers = users.map((user) => [user, checked.get(user)])
  } catch {
    // The database cannot say: a recent answer will do; none means we cannot accept.
    answers = users.map((user) => [user, grants.cached(agentId, user, now, scope)?.granted])
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
        denied.has(u.user_id) ? [{ path: at(i, 'user_id'), message: 'No such user' }] : [],
      ),
    })
  }
}
