// GET /api/v1/agent/users/{userId}/context (CONTRACT.md): the path parameter and the answer.
import * as z from 'zod/mini'
import { identifier, instant, jsonObject, onFirstUse } from './common.ts'
import { PROGRESS_STATUSES } from './progress.ts'
import { storableParam } from './storable.ts'

export const userIdParam = z
  .strictObject({
    userId: storableParam({ min: 1, max: 128 }).check(
      z.describe('The user (1–128 characters). Unknown and not granted give the same 404.'),
    ),
  })
  .register(z.globalRegistry, { id: 'UserId' })

export const CONTEXT_SOURCES = ['database', 'cache', 'stale-cache', 'basic', 'mock'] as const
export type ContextSource = (typeof CONTEXT_SOURCES)[number]

export const CACHE_STATUSES = ['HIT', 'MISS', 'STALE', 'BYPASS'] as const

/**
 * The 200 answer's text around a user's members (`"user":…,"context":…,"progress":…`, as
 * cached): its source, `cached_at` (ms since the epoch, or null) and whether it is degraded.
 */
export function contextAnswerText(
  members: string,
  source: ContextSource,
  cachedAt: number | null,
  degraded: boolean,
): string {
  const at = cachedAt === null ? 'null' : `"${new Date(cachedAt).toISOString()}"`
  return `{${members},"source":"${source}","cached_at":${at},"degraded":${degraded}}`
}

export const taskProgress = onFirstUse(() =>
  z
    .strictObject({
      task_id: identifier,
      status: z.enum(PROGRESS_STATUSES),
      progress: z.number().check(z.int(), z.minimum(0), z.maximum(100)),
      updated_at: instant(),
    })
    .register(z.globalRegistry, { id: 'TaskProgress' }),
)
export type TaskProgress = z.output<ReturnType<typeof taskProgress>>

export const userContextResponse = onFirstUse(() =>
  z
    .strictObject({
      user: z.strictObject({
        id: identifier,
        display_name: z.optional(z.string()),
        timezone: z.optional(z.string()),
        locale: z.optional(z.string()),
      }),
      context: jsonObject().check(z.describe('Free-form JSON: goals, preferences, notes.')),
      progress: z.array(taskProgress()),
      source: z
        .enum(CONTEXT_SOURCES)
        .check(
          z.describe(
            '`database`, `cache`, `stale-cache`, `basic` (degraded: `user.id` only, empty `context` and `progress`) or `mock` (development only).',
          ),
        ),
      cached_at: z
        .nullable(instant())
        .check(z.describe('When the answer was cached, or null when it came from the database.')),
      degraded: z
        .boolean()
        .check(z.describe('True when the database could not answer (see `X-Degraded`).')),
    })
    .register(z.globalRegistry, {
      id: 'UserContextResponse',
      description: 'A user’s profile, free-form context and task progress.',
    }),
)
export type UserContextResponse = z.output<ReturnType<typeof userContextResponse>>

/** The request headers the route reads (documented; neither can make the request fail). */
export const contextHeaders = onFirstUse(() =>
  z.object({
    'If-None-Match': z.optional(
      z
        .string()
        .check(z.describe('An `ETag` from an earlier answer: `304` while it still matches.')),
    ),
    'Cache-Control': z.optional(
      z.string().check(
        z.meta({
          description: '`no-cache` bypasses the cache (`X-Cache: BYPASS`).',
          examples: ['no-cache'],
        }),
      ),
    ),
  }),
)
