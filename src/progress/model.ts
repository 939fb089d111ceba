// One accepted progress update as the buffer keeps it and the writer stores it.
import type { ProgressStatus } from '../contract/progress.ts'

export interface BufferedUpdate {
  /** Unique per accepted update (the buffer's item id). */
  id: string
  batchId: string
  agentId: string
  idempotencyKey: string
  /**
   * Hash of the update's canonical content (`fingerprint()`), kept with its key so that a key
   * re-used for another update is told from a retry. Absent on items buffered by versions
   * before it existed.
   */
  fingerprint?: string
  userId: string
  taskId: string
  status: ProgressStatus
  progress: number
  /** JSON text of the update's `data`, or null. */
  data: string | null
  /** RFC 3339, normalised to UTC. */
  occurredAt: string
  /** When the API accepted it (ms since epoch). */
  receivedAt: number
}

/** An idempotency key as the stores remember it: the agent's key, per agent. */
export const eventKeyOf = (u: Pick<BufferedUpdate, 'agentId' | 'idempotencyKey'>) =>
  `${u.agentId}\u0000${u.idempotencyKey}`

/**
 * What makes an event unique in the log: (agent, idempotency key, fingerprint). The same update
 * sent again is one event; a different update under a key the API had forgotten (past
 * PROGRESS_DEDUPE_TTL_MS) or could not know at request time (another store held it) is its
 * own event, since both were answered with a 202.
 */
export const eventIdOf = (u: Pick<BufferedUpdate, 'agentId' | 'idempotencyKey' | 'fingerprint'>) =>
  `${u.agentId}\u0000${u.idempotencyKey}\u0000${u.fingerprint ?? ''}`
