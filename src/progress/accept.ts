// Accepting a request's progress updates (POST /api/v1/agent/progress), once they are
// validated and their users' grants checked.
//
// A 202 means durable: appended to the Redis buffer (`queued`), or — without Redis, while it
// fails, or while the buffer (or this agent's share of it, PROGRESS_BUFFER_AGENT_SHARE_PERCENT)
// is full — committed by this request, in its own Neon transaction (`committed`). So one agent
// cannot lock the others out of the buffer, and a full buffer refuses nothing Postgres can take.
// Nothing a request awaits belongs to another request. When neither store takes the write the
// answer is a 503 that says what is known: `progress_unavailable` when nothing was accepted for
// certain, `outcome_unknown` when a store timed out and may have applied it (retry with the
// same keys).

import { ProblemError, problems } from '../contract/problem.ts'
import type { ProgressAccepted } from '../contract/progress.ts'
import type { Logger } from '../kernel/log.ts'
import type { CallScope } from '../kernel/scope.ts'
import type { AppendResult } from './buffer.ts'
import { lookUpKeys, syncBatch } from './dedupe.ts'
import { flushDue, flushProgress } from './flush.ts'
import { type KnownKey, knownFingerprint } from './idempotency.ts'
import { type BufferedUpdate, eventKeyOf } from './model.ts'
import {
  databaseWriteOutcome,
  errorFields,
  isDataError,
  redisWriteOutcome,
  type WriteOutcome,
} from './outcome.ts'
import type { ProgressDeps } from './service.ts'
import { KEY_REUSED_SQLSTATE, writeDirect } from './writer.ts'

/** How a request names its updates in error paths: `updates.3.` or `` for a single update. */
export type PathOf = (index: number, field: string) => string

const RETRY_AFTER_SECONDS = 5

/** 422 idempotency_key_reused (draft-ietf-httpapi-idempotency-key-header §2.7). */
export function keyReused(path: string): ProblemError {
  return new ProblemError({
    status: 422,
    code: 'idempotency_key_reused',
    title: 'Unprocessable Content',
    detail:
      'An idempotency key was already used for a different update; nothing was accepted. Use a new key for a new update',
    errors: [{ path, message: 'Already used for a different update' }],
  })
}

/**
 * The first update whose key appears earlier in the request (or in `known`, the keys Postgres
 * remembers) with another fingerprint, or -1.
 */
export function firstReusedKey(
  updates: readonly BufferedUpdate[],
  known?: ReadonlyMap<string, KnownKey>,
): number {
  const seen = new Map<string, string | undefined>()
  for (let i = 0; i < updates.length; i++) {
    const u = updates[i]!
    const key = eventKeyOf(u)
    const prior = seen.has(key) ? seen.get(key) : knownFingerprint(known, u)?.fingerprint
    if (prior === undefined) {
      if (!seen.has(key)) seen.set(key, u.fingerprint)
      continue
    }
    if (prior.startsWith('f1:') && u.fingerprint !== undefined && prior !== u.fingerprint) return i
  }
  return -1
}

/**
 * Takes a validated, authorised request's updates (all of one batch). Throws a ProblemError
 * for every answer but 202.
 */
export async function acceptProgress(
  services: ProgressDeps,
  batch: { id: string; agentId: string },
  updates: readonly BufferedUpdate[],
  pathOf: PathOf,
  scope: CallScope,
  /** The request's logger (its request id bound), else the isolate's. */
  log: Logger = services.log,
): Promise<ProgressAccepted> {
  const { progress, db, clock, config, breakers } = services
  const reused = firstReusedKey(updates)
  if (reused >= 0) throw keyReused(pathOf(reused, 'idempotency_key'))

  let redisOutcome: WriteOutcome | undefined
  /** The buffer refused for room: the 503, if Postgres cannot take it either, says so. */
  let full = false
  const buffer = progress.buffer
  if (buffer && !breakers.get('redis').isOpen()) {
    let known: Map<string, KnownKey> | undefined
    if (db && !breakers.get('neon').isOpen() && (await progress.directCommits.mustLookUp(scope))) {
      try {
        known = await lookUpKeys(
          db,
          batch.agentId,
          updates.map((u) => u.idempotencyKey),
          scope,
          config.tunables.databaseTimeoutMs,
          clock.now(),
          config.tunables.progressDedupeTtlMs,
        )
      } catch (err) {
        // Postgres cannot say: Redis' dedupe alone decides (the event log stays exact).
        log.warn('progress key lookup failed; deduplicating by Redis alone', errorFields(err))
      }
      const index = known ? firstReusedKey(updates, known) : -1
      if (index >= 0) throw keyReused(pathOf(index, 'idempotency_key'))
    }
    const now = clock.now()
    let result: AppendResult | undefined
    try {
      result = await buffer.append(batch, updates, now, scope, known)
    } catch (err) {
      redisOutcome = redisWriteOutcome(err)
      log.warn('progress buffer unavailable; committing directly', {
        outcome: redisOutcome,
        ...errorFields(err),
      })
    }
    if (result && !result.ok && result.reason === 'key_reused') {
      throw keyReused(pathOf(result.index, 'idempotency_key'))
    }
    if (result?.ok) {
      progress.buffered.note(updates, now)
      const t = config.tunables
      if (
        flushDue(result, now, { batchSize: t.progressBatchSize, delayMs: t.progressBatchDelayMs })
      ) {
        scope.defer?.(flushProgress(services, scope, { counts: false }))
      }
      return {
        batch_id: batch.id,
        accepted: result.accepted,
        duplicates: result.duplicates,
        status: 'queued',
      }
    }
    if (result) {
      // The buffer, or this agent's share of it, has no room: the script wrote nothing.
      full = true
      redisOutcome = 'none'
      log.info('progress buffer full for this request; committing directly', {
        reason: result.reason,
      })
    }
  }

  /** Updates this instance buffered before, the same: duplicates, whatever Postgres knows. */
  let buffered: boolean[] | undefined
  if (buffer) {
    // Redis cannot say what it holds: what this instance queued under these keys can still
    // refuse another update under one of them (the event log stays one update per key).
    const remembered = progress.buffered.known(updates, clock.now())
    const index = firstReusedKey(updates, remembered)
    if (index >= 0) throw keyReused(pathOf(index, 'idempotency_key'))
    if (remembered.size > 0) {
      buffered = updates.map((u) => knownFingerprint(remembered, u)?.fingerprint === u.fingerprint)
    }
  }

  let databaseOutcome: WriteOutcome | undefined
  if (db) {
    // The append may still land: a batch of its own keeps the two copies' records apart, so
    // the answer given here is the one its batch id will always report.
    const direct = redisOutcome === 'unknown' ? { ...batch, id: crypto.randomUUID() } : batch
    const items = direct === batch ? updates : updates.map((u) => ({ ...u, batchId: direct.id }))
    try {
      const now = clock.now()
      const result = await writeDirect(
        db,
        direct,
        items,
        now,
        scope,
        config.tunables.progressDedupeTtlMs,
        buffered,
      )
      if (buffer) {
        // Redis' dedupe must learn these keys. Try at once, after the answer: if Redis only
        // hiccuped this costs two round trips and no request ever looks keys up in Postgres.
        const noted = () => progress.directCommits.noteDirectCommit()
        if (breakers.get('redis').isOpen()) noted()
        else scope.defer?.(syncBatch(db, buffer, direct.id, items, now, scope).catch(noted))
      }
      progress.invalidate(result.changedUsers, scope)
      return {
        batch_id: direct.id,
        accepted: result.accepted,
        duplicates: result.duplicates,
        status: 'committed',
      }
    } catch (err) {
      databaseOutcome = databaseWriteOutcome(err)
      const fields = errorFields(err)
      if (fields.code === KEY_REUSED_SQLSTATE) {
        const key = (err as { detail?: unknown }).detail
        const index = Math.max(
          0,
          updates.findIndex((u) => u.idempotencyKey === key),
        )
        throw keyReused(pathOf(index, 'idempotency_key'))
      }
      if (isDataError(err)) {
        // Validation lets nothing through that Postgres refuses; if it ever does, that is a
        // defect to see in the logs, and the agent is told plainly (a retry would not help).
        log.error('progress update refused by the database', fields)
        throw new ProblemError({
          status: 422,
          code: 'update_refused',
          title: 'Unprocessable Content',
          detail:
            'The database refused an update of this request; nothing was accepted. Retrying it unchanged will not help',
        })
      }
      log.warn('progress commit failed', { outcome: databaseOutcome, ...fields })
    }
  }

  if (redisOutcome === 'unknown' || databaseOutcome === 'unknown') {
    throw problems.unavailable(
      'outcome_unknown',
      'A store timed out and may have taken the update(s). Retry the same request with the same idempotency keys: nothing will be applied twice',
      RETRY_AFTER_SECONDS,
    )
  }
  throw problems.unavailable(
    'progress_unavailable',
    full
      ? 'The progress buffer (or this agent’s share of it) is full and the database cannot take the update(s) now; nothing was accepted'
      : 'No durable store can take progress now; nothing was accepted',
    RETRY_AFTER_SECONDS,
  )
}
