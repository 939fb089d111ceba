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

export const groupOf = (u: Pick<BufferedUpdate, 'userId' | 'taskId'>) =>
  `${u.userId}\u0000${u.taskId}`

/** What makes an update's event unique: the agent's idempotency key, per agent. */
export const eventKeyOf = (u: Pick<BufferedUpdate, 'agentId' | 'idempotencyKey'>) =>
  `${u.agentId}\u0000${u.idempotencyKey}`
