// Aggregation per (user, task): the event log keeps every update once; current state keeps
// the latest by occurred_at. Pure, so properties can check it against any arrival order.
import { type BufferedUpdate, eventKeyOf, groupOf } from './model.ts'

/**
 * Orders updates of one group by recency: occurred_at, then arrival, then key, agent and id —
 * a total order, so the update chosen never depends on the order they arrived in.
 */
export function newer(a: BufferedUpdate, b: BufferedUpdate): boolean {
  const ta = Date.parse(a.occurredAt)
  const tb = Date.parse(b.occurredAt)
  if (ta !== tb) return ta > tb
  if (a.receivedAt !== b.receivedAt) return a.receivedAt > b.receivedAt
  if (a.idempotencyKey !== b.idempotencyKey) return a.idempotencyKey > b.idempotencyKey
  if (a.agentId !== b.agentId) return a.agentId > b.agentId
  return a.id > b.id
}

export interface Aggregated {
  /** Every update, once per (agent, idempotency key), in arrival order. */
  events: BufferedUpdate[]
  /** The latest update of each (user, task). */
  latest: BufferedUpdate[]
  /** Users whose current state may change. */
  users: string[]
}

export function aggregate(updates: readonly BufferedUpdate[]): Aggregated {
  const seen = new Set<string>()
  const events: BufferedUpdate[] = []
  const latest = new Map<string, BufferedUpdate>()
  for (const update of updates) {
    const key = eventKeyOf(update)
    if (seen.has(key)) continue // a duplicate within the flush: the first one is the update
    seen.add(key)
    events.push(update)
    const group = groupOf(update)
    const current = latest.get(group)
    if (!current || newer(update, current)) latest.set(group, update)
  }
  const groups = [...latest.values()]
  return { events, latest: groups, users: [...new Set(groups.map((u) => u.userId))] }
}
