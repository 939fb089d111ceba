// Flushing the buffer: one flush at a time across all isolates (a lease in Redis), each
// draining everything that is waiting, in rounds of one claim → one Neon transaction → one
// ack. A write that fails puts its items back for the next flush; a flush that dies leaves
// its claim to expire, and the next claim re-delivers it. Writes are idempotent, so a
// re-delivered update is never applied twice.
import type { CallScope } from '../platform.ts'
import type { Services } from '../services.ts'
import { writeUpdates } from './writer.ts'

export interface FlushReport {
  flushed: number
  remaining: number
  rounds: number
  /** Why nothing was flushed, when nothing was. */
  skipped?: 'no_buffer' | 'no_database' | 'lease_held' | 'circuit_open' | 'buffer_unavailable'
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

/**
 * Flushes the buffer. `drain` (the scheduled job, the cron route) takes everything waiting;
 * without it (a request crossed a threshold) only a due buffer is flushed, so triggers that
 * arrive after the flush that served them do not cost a transaction of stragglers.
 */
export async function flushProgress(
  services: Services,
  scope: CallScope = {},
  options: { drain?: boolean } = {},
): Promise<FlushReport> {
  const { progress, db, clock, config, events, log } = services
  const buffer = progress.buffer
  if (!buffer) return { flushed: 0, remaining: 0, rounds: 0, skipped: 'no_buffer' }
  if (!db) return { flushed: 0, remaining: await remaining(), rounds: 0, skipped: 'no_database' }
  if (services.breakers.get('neon').isOpen()) {
    return { flushed: 0, remaining: await remaining(), rounds: 0, skipped: 'circuit_open' }
  }

  const token = crypto.randomUUID()
  const leaseMs = config.tunables.progressClaimTimeoutMs
  let leased: boolean
  try {
    leased = await buffer.acquireLease(token, leaseMs, scope)
  } catch {
    // Redis is down: nothing can be claimed; the items wait, durably, for the next flush.
    return { flushed: 0, remaining: -1, rounds: 0, skipped: 'buffer_unavailable' }
  }
  if (!leased) return { flushed: 0, remaining: await remaining(), rounds: 0, skipped: 'lease_held' }

  const started = clock.now()
  let flushed = 0
  let rounds = 0
  let error: string | undefined
  try {
    // Stop well inside the lease, so no second flush starts while this one still writes.
    while (rounds < MAX_ROUNDS && clock.now() - started < leaseMs / 2) {
      const t = config.tunables
      const due = options.drain
        ? undefined
        : { batchSize: t.progressBatchSize, delayMs: t.progressBatchDelayMs }
      let items: Awaited<ReturnType<typeof buffer.claim>>
      try {
        items = await buffer.claim(clock.now(), ITEMS_PER_ROUND, scope, due)
      } catch (err) {
        error = err instanceof Error ? err.name : 'error'
        break
      }
      if (items.length === 0) break
      rounds++
      const roundStart = performance.now()
      try {
        const result = await writeUpdates(db, items, scope)
        // Committed: drop the changed users' context now, even if the ack below fails (the
        // re-delivered items then change nothing, so nothing would invalidate them later).
        progress.invalidate(result.changedUsers, scope)
        await buffer.ack(items, clock.now(), scope)
        flushed += items.length
        events.emit({
          type: 'batch.flush',
          items: items.length,
          changedUsers: result.changedUsers.length,
          ok: true,
          durationMs: performance.now() - roundStart,
        })
      } catch (err) {
        error = err instanceof Error ? err.name : 'error'
        events.emit({
          type: 'batch.flush',
          items: items.length,
          changedUsers: 0,
          ok: false,
          durationMs: performance.now() - roundStart,
        })
        log.warn('progress flush failed; its items go back to the buffer', {
          items: items.length,
          error: err,
        })
        await buffer.nack(items, scope).catch(() => {
          // Redis failed too: the claim expires and the next flush re-delivers the items.
        })
        break
      }
      if (items.length < ITEMS_PER_ROUND) break
    }
  } finally {
    await buffer.releaseLease(token, scope).catch(() => {})
  }
  return { flushed, remaining: await remaining(), rounds, ...(error ? { error } : {}) }

  async function remaining(): Promise<number> {
    try {
      const stats = await buffer!.stats(scope)
      return stats.ready + stats.processing
    } catch {
      return -1
    }
  }
}
