// GET /api/v1/agent/users/{userId}/context (CONTRACT.md).
import * as z from 'zod/mini'
import { identifier } from './common.ts'

export const userIdParam = z.strictObject({ userId: identifier })

export type ContextSource = 'database' | 'cache' | 'stale-cache' | 'basic' | 'mock'

export interface TaskProgress {
  task_id: string
  status: ProgressStatus
  progress: number
  updated_at: string
}

export type ProgressStatus = 'not_started' | 'in_progress' | 'completed' | 'failed' | 'skipped'

export interface UserContextResponse {
  user: { id: string; display_name?: string; timezone?: string; locale?: string }
  context: Record<string, unknown>
  progress: TaskProgress[]
  source: ContextSource
  /** When the answer was cached (RFC 3339), or null when it came from the database. */
  cached_at: string | null
  degraded: boolean
}
