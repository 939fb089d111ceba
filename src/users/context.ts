// A user's context: profile, free-form context and task progress, loaded in one query and
// cached per isolate in its serialised form, so a cache hit costs no JSON.stringify of the
// payload and no hashing (the ETag is computed once per load).
import { SwrCache } from '../cache/swr.ts'
import type { Tunables } from '../config/tunables.ts'
import { contextAnswerText, type TaskProgress } from '../contract/context.ts'
import type { ProgressStatus } from '../contract/progress.ts'
import { type CallOptions, type Database, sql } from '../db/client.ts'
import type { EventBus } from '../kernel/events.ts'

export interface CachedContext {
  /** `"user":…,"context":…,"progress":…` — the payload's members, ready to embed. */
  members: string
  etag: string
  /**
   * A fresh hit's whole 200 body, encoded once when the entry is stored (`cached_at` is then
   * known): a hit costs no string building or UTF-8 encoding of the payload.
   */
  hit?: { cachedAt: number; body: Uint8Array<ArrayBuffer> }
}

interface ContextRow {
  id: string
  display_name: string
  timezone: string
  locale: string
  context: Record<string, unknown> | null
  progress: { task_id: string; status: ProgressStatus; progress: number; updated_at: string }[]
}

export async function loadUserContext(
  db: Database,
  userId: string,
  call: CallOptions,
): Promise<CachedContext | null> {
  const rows = await db.query<ContextRow>(
    sql`SELECT u.id, u.display_name, u.timezone, u.locale, c.context,
          coalesce((
            SELECT json_agg(json_build_object(
                     'task_id', p.task_id, 'status', p.status, 'progress', p.progress,
                     'updated_at', p.occurred_at) ORDER BY p.task_id)
            FROM progress_state p WHERE p.user_id = u.id), '[]'::json) AS progress
        FROM users u LEFT JOIN user_context c ON c.user_id = u.id
        WHERE u.id = ${userId}`,
    { ...call, idempotent: true },
  )
  const row = rows[0]
  if (!row) return null
  const progress: TaskProgress[] = row.progress.map((p) => ({
    task_id: p.task_id,
    status: p.status,
    progress: p.progress,
    updated_at: new Date(p.updated_at).toISOString(),
  }))
  const members = [
    `"user":${JSON.stringify({ id: row.id, display_name: row.display_name, timezone: row.timezone, locale: row.locale })}`,
    `"context":${JSON.stringify(row.context ?? {})}`,
    `"progress":${JSON.stringify(progress)}`,
  ].join(',')
  return { members, etag: await etagOf(members) }
}

/** Weak: the body also carries per-answer metadata (source, cached_at) that may differ. */
async function etagOf(members: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(members))
  const hex = Array.from(new Uint8Array(digest).slice(0, 12), (b) =>
    b.toString(16).padStart(2, '0'),
  )
  return `W/"${hex.join('')}"`
}

const UTF8 = new TextEncoder()
// biome-ignore lint/suspicious/noControlCharactersInRegex: the whole Latin-1 range, on purpose
const LATIN1 = /^[\x00-\xff]*$/

export function contextCache(t: Tunables, now: () => number, events?: EventBus) {
  return new SwrCache<CachedContext>({
    maxEntries: t.contextCacheMaxEntries,
    maxBytes: t.contextCacheMaxBytes,
    ttlMs: t.contextCacheTtlMs,
    staleMs: t.contextCacheStaleMs,
    negativeTtlMs: t.contextCacheNegativeTtlMs,
    // What an entry holds: `members` (V8 keeps a Latin-1 string at one byte a character, any
    // other at two) and the hit body's UTF-8 bytes. Counting `members` at two bytes a character
    // throughout made the hit body's copy cost a third of the cache's room for JSON.
    sizeOf: (value) =>
      value.members.length * (LATIN1.test(value.members) ? 1 : 2) +
      value.etag.length +
      (value.hit?.body.length ?? 0),
    keep: (value, storedAt) => ({
      ...value,
      hit: {
        cachedAt: storedAt,
        body: UTF8.encode(contextAnswerText(value.members, 'cache', storedAt, false)),
      },
    }),
    now,
    onRead: (status) => events?.emit({ type: 'cache.read', cache: 'user-context', status }),
  })
}

/** The degraded answer with nothing cached: only what the caller already knows. */
export function basicMembers(userId: string): string {
  return `"user":${JSON.stringify({ id: userId })},"context":{},"progress":[]`
}

/** Development-only stand-in data, so a UI can be built with the database down. */
export function mockMembers(userId: string): string {
  return [
    `"user":${JSON.stringify({ id: userId, display_name: 'Mock User', timezone: 'UTC', locale: 'en-US' })}`,
    `"context":${JSON.stringify({ goals: ['Mock goal'], notes: 'Mock data: the database is unavailable' })}`,
    `"progress":${JSON.stringify([{ task_id: 'mock-task', status: 'in_progress', progress: 50, updated_at: new Date(0).toISOString() }])}`,
  ].join(',')
}
