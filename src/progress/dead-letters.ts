// Operating the dead letters: accepted progress updates a store refused at flush time (a data
// error, SQLSTATE class 22/23) or that Lua could not decode (and, from versions before every
// accepted update became its own event, updates whose key had been re-used). They
// are kept in Redis, counted in the health report and raise a critical alert until an operator
// lists them, fixes the cause, and re-drives them (back into the buffer, as buffered) or
// discards them (their batches then settle as committed, with `discarded` counting them).
//
// The CLI (scripts/cli/dead-letters.ts) is a thin shell over these functions.
import type { CallScope } from '../kernel/scope.ts'
import type { DeadLetterReason, ProgressBuffer } from './buffer.ts'

export interface DeadLetterSummary {
  id: string
  reason: DeadLetterReason | null
  /** What could be read of the item (an undecodable item may still parse here). */
  batchId?: string
  agentId?: string
  userId?: string
  taskId?: string
  idempotencyKey?: string
  occurredAt?: string
  /** Bytes of the item as buffered. */
  bytes: number
  /** The item as buffered (JSON text): it holds the update's free-form data. */
  item: string
}

/** Up to `limit` dead letters, read for display, and how many exist. */
export async function listDeadLetters(
  buffer: ProgressBuffer,
  limit = 100,
  scope?: CallScope,
): Promise<{ total: number; items: DeadLetterSummary[] }> {
  const { total, items } = await buffer.deadLetters(limit, scope)
  return {
    total,
    items: items.map(({ id, item, reason }) => {
      const fields = readItem(item)
      return {
        id,
        reason,
        ...fields,
        bytes: new TextEncoder().encode(item).byteLength,
        item,
      }
    }),
  }
}

export interface Selection {
  ids?: readonly string[]
  all?: boolean
}

async function selected(buffer: ProgressBuffer, which: Selection, scope?: CallScope) {
  if (which.all) return buffer.deadLetterIds(scope)
  return [...new Set(which.ids ?? [])]
}

/** Puts dead letters back into the buffer; the next flush writes them again. */
export async function redriveDeadLetters(
  buffer: ProgressBuffer,
  which: Selection,
  scope?: CallScope,
): Promise<{ redriven: string[]; notFound: string[]; undecodable: string[] }> {
  const ids = await selected(buffer, which, scope)
  const outcome = await buffer.redrive(ids, scope)
  const pick = (value: string) => ids.filter((id) => outcome.get(id) === value)
  return {
    redriven: pick('redriven'),
    notFound: pick('not_found'),
    undecodable: pick('undecodable'),
  }
}

/** Drops dead letters for good. */
export async function discardDeadLetters(
  buffer: ProgressBuffer,
  which: Selection,
  now: number,
  scope?: CallScope,
): Promise<{ discarded: string[]; notFound: string[] }> {
  const ids = await selected(buffer, which, scope)
  const outcome = await buffer.discard(ids, now, scope)
  return {
    discarded: ids.filter((id) => outcome.get(id) === 'discarded'),
    notFound: ids.filter((id) => outcome.get(id) === 'not_found'),
  }
}

/** The identifying fields of a buffered item, as far as its text parses. */
function readItem(item: string): Partial<DeadLetterSummary> {
  try {
    const value = JSON.parse(item) as Record<string, unknown>
    const text = (key: string) =>
      typeof value[key] === 'string' ? (value[key] as string) : undefined
    return {
      batchId: text('batchId'),
      agentId: text('agentId'),
      userId: text('userId'),
      taskId: text('taskId'),
      idempotencyKey: text('idempotencyKey'),
      occurredAt: text('occurredAt'),
    }
  } catch {
    return {}
  }
}
