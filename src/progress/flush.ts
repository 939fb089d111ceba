// Flushing the buffer: one flush at a time across all isolates (a lease in Redis), each
// draining everything that is waiting, in rounds of one claim → one Neon transaction → one
// ack. A write that fails with an outage puts its items back for the next flush; a flush
// that dies leaves its claim to expire, and the next claim re-delivers it. Writes are
// idempotent, so a re-delivered update is never applied twice.
//
// Poison isolation: a write refused with a data error (SQLSTATE class 22 or 23) is bisected —
// each half written in its own transaction — until the refused items stand alone; everything
// else commits and only those move to the dead letters, with the SQLSTATE (never the error's
// text). Dead letters are kept until an operator re-drives or discards them. A key the client
// re-used for another update is never one: each accepted update is its own event
// (src/progress/writer.ts), so nothing a client sends can raise the dead-letter alert.
//
// Batches: a batch whose last outstanding updates are in a write is recorded in Postgres in
// that same transaction (its one committed_at), and the ack gives Redis the same time. While one
// of its updates is a dead letter, a batch stays `queued`.
import { sqlState } from '../db/client.ts'
import type { CallScope } from '../kernel/scope.ts'
import type { Claim, DeadLetterReason, ProgressBuffer } from './buffer.ts'
import { syncDirectCommits } from './dedupe.ts'
import type { BufferedUpdate } from './model.ts'
import { errorFields, isDataError } from './outcome.ts'
import type { ProgressDeps } from './service.ts'
import { type BatchRow, recordBatches, writeFlushed } from './writer.ts'

export interface FlushReport {
  /** Updates committed (or found committed already) and acknowledged. */
  flushed: number
  /** Updates still buffered (ready or claimed); -1 when not counted or they could not be. */
  remaining: number
  /** Dead letters now held; -1 when not counted or they could not be. */
  deadLetters: number
  /** Updates this flush moved to the dead letters. */
  buried: number
  rounds: number
  /** Why nothing was flushed, when nothing was. */
  skipped?: 'no_buffer' | 'no_database' | 'lease_held' | 'circuit_open' | 'buffer_unavailable'
  /** The kind of failure that ended the flush early (an error name or a SQLSTATE). */
  error?: string
}

/** Whether an append's result calls for a flush now: a full group, or an old enough item. */
export function flushDue(
  state: { largestGroup: number; oldestAt: number | null },
  now: number,
  rules: { batchSize: number; delayMs: number },
): boolean {
  return (
    state.largestGroup >= rules.batchSize ||
    (state.oldestAt !== null && now - state.oldestAt >= rules.delayMs)
  )
}

const ITEMS_PER_ROUND = 1000
const MAX_ROUNDS = 20
/** Transactions one round may spend isolating refused items; the rest wait for the next. */
const MAX_ISOLATION_WRITES = 64

/**
 * Flushes the buffer. `drain` (the scheduled job, the cron route) takes everything waiting;
 * without it (a request crossed a threshold) only a due buffer is flushed, so triggers that
 * arrive after the flush that served them do not cost a transaction of stragglers. `counts:
 * false` (a request's trigger, whose report nobody reads) skips the round trip that counts
 * what remains: `remaining` and `deadLetters` are then -1.
 */
export async function flushProgress(
  services: ProgressDeps,
  scope: CallScope = {},
  options: { drain?: boolean; counts?: boolean } = {},
): Promise<FlushReport> {
  const { progress, db, clock, config } = services
  const buffer = progress.buffer
  const idle = { flushed: 0, buried: 0, rounds: 0 }
  if (!buffer) return { ...idle, remaining: 0, deadLetters: 0, skipped: 'no_buffer' }
  if (!db) return { ...idle, ...(await counts()), skipped: 'no_database' }
  if (services.breakers.get('neon').isOpen()) {
    return { ...idle, ...(await counts()), skipped: 'circuit_open' }
  }

  const token = crypto.randomUUID()
  const leaseMs = config.tunables.progressClaimTimeoutMs
  let leased: boolean
  try {
    leased = await buffer.acquireLease(token, leaseMs, scope, clock.now())
  } catch {
    // Redis is down: nothing can be claimed; the items wait, durably, for the next flush.
    return { ...idle, remaining: -1, deadLetters: -1, skipped: 'buffer_unavailable' }
  }
  if (!leased) return { ...idle, ...(await counts()), skipped: 'lease_held' }

  const started = clock.now()
  // Stop well inside the lease, so no second flush starts while this one still writes.
  const deadline = started + leaseMs / 2
  let flushed = 0
  let buried = 0
  let rounds = 0
  let error: string | undefined
  try {
    while (rounds < MAX_ROUNDS && clock.now() < deadline) {
      const t = config.tunables
      const due = options.drain
        ? undefined
        : { batchSize: t.progressBatchSize, delayMs: t.progressBatchDelayMs }
      let claim: Claim
      try {
        claim = await buffer.claim(clock.now(), ITEMS_PER_ROUND, scope, due)
      } catch (err) {
        error = errorFields(err).error_name
        break
      }
      buried += claim.buried
      if (claim.items.length === 0) break
      rounds++
      const round = await writeRound(services, buffer, claim, scope, deadline)
      flushed += round.committed
      buried += round.buried
      if (round.error) {
        error = round.error
        break
      }
      if (claim.items.length < ITEMS_PER_ROUND) break
    }
    if (!error && options.drain) error = await recordSettled(services, buffer, scope)
    if (!error && (options.drain || (await progress.directCommits.mustLookUp(scope)))) {
      error = await syncRemaining(services, buffer, scope, deadline)
    }
  } finally {
    await buffer.releaseLease(token, scope).catch(() => {})
  }
  if (buried > 0) {
    services.log.error('progress updates moved to the dead letters', { buried })
  }
  return { flushed, buried, rounds, ...(await counts()), ...(error ? { error } : {}) }

  async function counts(): Promise<{ remaining: number; deadLetters: number }> {
    if (options.counts === false) return { remaining: -1, deadLetters: -1 }
    try {
      const stats = await buffer!.stats(scope)
      return { remaining: stats.ready + stats.processing, deadLetters: stats.deadLetters }
    } catch {
      return { remaining: -1, deadLetters: -1 }
    }
  }
}

interface RoundResult {
  committed: number
  buried: number
  error?: string
}

/** One claim: written whole, or (on a data error) isolated; then buried, acked and nacked. */
async function writeRound(
  services: ProgressDeps,
  buffer: ProgressBuffer,
  claim: Claim,
  scope: CallScope,
  deadline: number,
): Promise<RoundResult> {
  const { db, clock, events, progress } = services
  const roundStart = performance.now()
  const committedAt = clock.now()
  const refused: { update: BufferedUpdate; reason: DeadLetterReason }[] = []
  const items = claim.items
  const batchRows = (exclude: ReadonlySet<string>) => completeBatches(claim, exclude)
  const emit = (ok: boolean, count: number, changedUsers: number) =>
    events.emit({
      type: 'batch.flush',
      items: count,
      changedUsers,
      ok,
      durationMs: performance.now() - roundStart,
    })

  let committed: BufferedUpdate[] = []
  let leftover: BufferedUpdate[] = []
  let recorded = new Map<string, number>()
  let error: string | undefined
  try {
    const result = await writeFlushed(db!, items, batchRows(new Set()), committedAt, scope)
    // Committed: drop the changed users' context now, even if the ack below fails (the
    // re-delivered items then change nothing, so nothing would invalidate them later).
    progress.invalidate(result.changedUsers, scope)
    committed = [...items]
    recorded = result.committed
    emit(true, items.length, result.changedUsers.length)
  } catch (err) {
    if (!isDataError(err)) {
      emit(false, items.length, 0)
      services.log.warn('progress flush failed; its items go back to the buffer', {
        items: items.length,
        ...errorFields(err),
      })
      leftover = items
      error = errorFields(err).error_name
    } else {
      const isolated = await isolate(services, items, err, committedAt, scope, deadline)
      committed = isolated.committed
      leftover = isolated.leftover
      refused.push(...isolated.refused)
      error = isolated.error
      emit(isolated.error === undefined, items.length, isolated.changedUsers)
      // Record the batches that are now whole, in one more transaction.
      const unsettled = new Set(
        [...refused.map((r) => r.update), ...leftover].map((u) => u.batchId),
      )
      const rows = batchRows(unsettled)
      if (rows.length) {
        try {
          recorded = (await writeFlushed(db!, [], rows, committedAt, scope)).committed
        } catch (err) {
          // Their items are committed, but the batches are not recorded: re-deliver them
          // (a no-op write) rather than acknowledge them, so the record is retried.
          const unrecorded = new Set(rows.map((r) => r.id))
          leftover.push(...committed.filter((u) => unrecorded.has(u.batchId)))
          committed = committed.filter((u) => !unrecorded.has(u.batchId))
          error ??= errorFields(err).error_name
        }
      }
    }
  }

  let buried = 0
  try {
    // Before the ack: a batch with a dead letter must not be settled by it.
    buried = await buffer.bury(refused, scope)
    await buffer.ack(committed, clock.now(), scope, recorded)
  } catch (err) {
    // Unacknowledged items are re-delivered when their claim expires; writing them again
    // changes nothing, and refused ones are refused (and buried) again.
    error ??= errorFields(err).error_name
  }
  await buffer.nack(leftover, clock.now(), scope).catch(() => {
    // Redis failed too: the claim expires and the next flush re-delivers the items.
  })
  return { committed: committed.length, buried, ...(error ? { error } : {}) }
}

/**
 * Finds the items a data error is about by bisection: each half in its own transaction,
 * depth first, until the refused ones stand alone. An outage, the deadline or the write
 * budget stops it; what is left goes back to the buffer.
 */
async function isolate(
  services: ProgressDeps,
  items: readonly BufferedUpdate[],
  failure: unknown,
  committedAt: number,
  scope: CallScope,
  deadline: number,
): Promise<{
  committed: BufferedUpdate[]
  refused: { update: BufferedUpdate; reason: DeadLetterReason }[]
  leftover: BufferedUpdate[]
  changedUsers: number
  error?: string
}> {
  const { db, clock, progress } = services
  const committed: BufferedUpdate[] = []
  const refused: { update: BufferedUpdate; reason: DeadLetterReason }[] = []
  const leftover: BufferedUpdate[] = []
  const queue: BufferedUpdate[][] = []
  if (items.length === 1) {
    // It already failed alone: refused without another write.
    refused.push({ update: items[0]!, reason: dataErrorReason(failure, committedAt) })
  } else {
    const half = Math.ceil(items.length / 2)
    queue.push(items.slice(0, half), items.slice(half))
  }
  let changedUsers = 0
  let writes = 0
  let error: string | undefined
  while (queue.length) {
    const set = queue.shift()!
    if (error || writes >= MAX_ISOLATION_WRITES || clock.now() >= deadline) {
      leftover.push(...set)
      continue
    }
    writes++
    try {
      const result = await writeFlushed(db!, set, [], committedAt, scope)
      progress.invalidate(result.changedUsers, scope)
      changedUsers += result.changedUsers.length
      committed.push(...set)
    } catch (err) {
      if (!isDataError(err)) {
        error = errorFields(err).error_name
        leftover.push(...set)
      } else if (set.length === 1) {
        refused.push({ update: set[0]!, reason: dataErrorReason(err, committedAt) })
      } else {
        const mid = Math.ceil(set.length / 2)
        queue.unshift(set.slice(0, mid), set.slice(mid))
      }
    }
  }
  return { committed, refused, leftover, changedUsers, ...(error ? { error } : {}) }
}

function dataErrorReason(err: unknown, at: number): DeadLetterReason {
  const sqlstate = sqlState(err)
  return { kind: 'data_error', ...(sqlstate ? { sqlstate } : {}), at }
}

/**
 * The claimed batches this write completes: every outstanding update of theirs is in this
 * claim, none is a dead letter, and none is in `exclude` (refused or left over).
 */
function completeBatches(claim: Claim, exclude: ReadonlySet<string>): BatchRow[] {
  const claimed = new Map<string, { count: number; agentId: string }>()
  for (const u of claim.items) {
    const seen = claimed.get(u.batchId)
    claimed.set(u.batchId, { count: (seen?.count ?? 0) + 1, agentId: u.agentId })
  }
  const rows: BatchRow[] = []
  for (const [id, { count, agentId }] of claimed) {
    const batch = claim.batches.get(id)
    if (!batch?.meta || exclude.has(id)) continue
    if (batch.outstanding !== count || batch.deadLetters > 0) continue
    rows.push({
      id,
      agentId,
      accepted: batch.meta.accepted,
      duplicates: batch.meta.duplicates,
      discarded: batch.discarded,
    })
  }
  return rows
}

const SETTLED_PER_FLUSH = 500

/**
 * Records in Postgres the batches Redis settled without it (src/progress/buffer.ts
 * `unrecorded`), with the committed_at Redis reports, so their status outlives Redis' week.
 */
async function recordSettled(
  services: ProgressDeps,
  buffer: ProgressBuffer,
  scope: CallScope,
): Promise<string | undefined> {
  try {
    const settled = await buffer.unrecordedBatches(SETTLED_PER_FLUSH, scope)
    if (settled.length === 0) return undefined
    await services.db!.query(
      recordBatches(
        settled,
        settled.map((b) => b.committedAt),
      ),
      scope,
    )
    await buffer.forgetUnrecorded(
      settled.map((b) => b.id),
      scope,
    )
    return undefined
  } catch (err) {
    return errorFields(err).error_name
  }
}

/** Copies direct commits' keys into Redis' dedupe while time allows. */
async function syncRemaining(
  services: ProgressDeps,
  buffer: ProgressBuffer,
  scope: CallScope,
  deadline: number,
): Promise<string | undefined> {
  const { db, clock, config, progress } = services
  const startedAt = clock.now()
  try {
    for (let i = 0; i < 10 && clock.now() < deadline; i++) {
      const { more } = await syncDirectCommits(
        db!,
        buffer,
        clock.now(),
        config.tunables.progressDedupeTtlMs,
        scope,
      )
      if (!more) {
        progress.directCommits.noteSynced(startedAt)
        return undefined
      }
    }
    return undefined
  } catch (err) {
    return errorFields(err).error_name
  }
}
