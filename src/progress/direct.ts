// Without Redis there is no durable buffer, and a 202 must still mean durable: requests that
// arrive together coalesce into one Neon transaction and answer `committed` once it commits.
// A short gathering window (a few ms) trades that much latency for far fewer transactions.

import { type Database, sql } from '../db/client.ts'
import type { CallScope } from '../platform.ts'
import { type BufferedUpdate, eventKeyOf } from './model.ts'
import { type WriteResult, writeUpdates } from './writer.ts'

export interface CommitOutcome {
  accepted: number
  duplicates: number
  committedAt: number
  changedUsers: string[]
}

interface Entry {
  batch: { id: string; agentId: string }
  updates: readonly BufferedUpdate[]
  resolve: (outcome: CommitOutcome) => void
  reject: (err: unknown) => void
}

export class CoalescingCommitter {
  readonly #db: Database
  readonly #windowMs: number
  readonly #maxUpdates: number
  readonly #now: () => number
  #open: { entries: Entry[]; size: number } | undefined

  constructor(options: { db: Database; windowMs: number; maxUpdates: number; now: () => number }) {
    this.#db = options.db
    this.#windowMs = options.windowMs
    this.#maxUpdates = options.maxUpdates
    this.#now = options.now
  }

  commit(
    batch: { id: string; agentId: string },
    updates: readonly BufferedUpdate[],
    scope: CallScope,
  ): Promise<CommitOutcome> {
    return new Promise((resolve, reject) => {
      const entry: Entry = { batch, updates, resolve, reject }
      const open = this.#open
      if (open && open.size + updates.length <= this.#maxUpdates) {
        open.entries.push(entry)
        open.size += updates.length
        return
      }
      // This request opens a group and, after the window, writes it for everyone in it.
      const group = { entries: [entry], size: updates.length }
      this.#open = group
      setTimeout(() => {
        if (this.#open === group) this.#open = undefined
        void this.#write(group.entries, scope)
      }, this.#windowMs)
    })
  }

  async #write(entries: Entry[], scope: CallScope): Promise<void> {
    const all = entries.flatMap((e) => e.updates)
    let result: WriteResult
    try {
      result = await writeUpdates(this.#db, all, scope, [
        // Each request's batch, committed with its updates, for GET …/batches/{id}.
        sql`INSERT INTO progress_batches (id, agent_id, accepted, duplicates, committed_at)
            SELECT b.id, b.agent_id,
                   (SELECT count(*) FROM progress_events e WHERE e.batch_id = b.id),
                   b.total - (SELECT count(*) FROM progress_events e WHERE e.batch_id = b.id),
                   now()
            FROM unnest(${entries.map((e) => e.batch.id)}::text[], ${entries.map((e) => e.batch.agentId)}::text[],
                        ${entries.map((e) => e.updates.length)}::int[]) AS b(id, agent_id, total)
            ON CONFLICT (id) DO NOTHING`,
      ])
    } catch (err) {
      for (const e of entries) e.reject(err)
      return
    }
    // In arrival order, the first holder of a key is the one whose event was inserted.
    const claimed = new Set<string>()
    const committedAt = this.#now()
    for (const entry of entries) {
      let accepted = 0
      for (const u of entry.updates) {
        const key = eventKeyOf(u)
        if (result.inserted.has(key) && !claimed.has(key)) {
          claimed.add(key)
          accepted++
        }
      }
      entry.resolve({
        accepted,
        duplicates: entry.updates.length - accepted,
        committedAt,
        changedUsers: result.changedUsers,
      })
    }
  }
}
