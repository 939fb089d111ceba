// The users an agent holds grants for (GET /api/v1/agent/users, the MCP tool `list_users`),
// keyset-paged by user id in byte order (COLLATE "C": the order does not depend on the
// database's locale). The cursor is the last id of the page, base64url-encoded: opaque to
// agents, and a value that does not decode to an id is a 400, never a query.
import { problems } from '../contract/problem.ts'
import { isStorableString } from '../contract/storable.ts'
import { USERS_PAGE_DEFAULT, type UsersPage } from '../contract/users.ts'
import { type Database, isDatabaseOutage, sql } from '../db/client.ts'
import type { CallScope } from '../kernel/scope.ts'

export interface UsersRequest {
  agentId: string
  cursor?: string
  /** 1–100 (validated by the caller's schema). */
  limit?: number
}

/**
 * One page of `agentId`'s granted users: `{ users: [{ id, display_name }], next_cursor }`;
 * for a delegated token (`scope.actingFor`), at most the user it acts for.
 * Throws a 400 ProblemError (`validation_failed`, path `cursor`) for a cursor this API did not
 * give, a 503 `database_unavailable` without a database or while it fails.
 */
export async function listUsers(
  deps: { db?: Database },
  request: UsersRequest,
  scope: CallScope,
): Promise<UsersPage> {
  const after = request.cursor === undefined ? null : decodeCursor(request.cursor)
  const limit = request.limit ?? USERS_PAGE_DEFAULT
  if (!deps.db) throw unavailable()
  // A delegated token (RFC 8693) acts for one user: it sees that user, if granted, and no other.
  const actingFor = scope.actingFor ?? null
  let rows: { id: string; display_name: string }[]
  try {
    rows = await deps.db.query(
      sql`SELECT u.id, u.display_name
          FROM agent_user_grants g JOIN users u ON u.id = g.user_id
          WHERE g.agent_id = ${request.agentId}
            AND (${actingFor}::text IS NULL OR u.id = ${actingFor}::text)
            AND (${after}::text IS NULL OR u.id COLLATE "C" > ${after}::text COLLATE "C")
          ORDER BY u.id COLLATE "C"
          LIMIT ${limit + 1}`,
      { ...scope, idempotent: true },
    )
  } catch (err) {
    // A failing database is an outage to report honestly; anything else is a defect (a 500).
    if (!isDatabaseOutage(err)) throw err
    throw unavailable()
  }
  const page = rows.slice(0, limit)
  const last = page.at(-1)
  return {
    users: page.map((r) => ({ id: r.id, display_name: r.display_name })),
    next_cursor: rows.length > limit && last ? encodeCursor(last.id) : null,
  }
}

const unavailable = () =>
  problems.unavailable('database_unavailable', 'The grants cannot be read right now', 5)

export function encodeCursor(userId: string): string {
  const bytes = new TextEncoder().encode(userId)
  let binary = ''
  for (const b of bytes) binary += String.fromCharCode(b)
  return btoa(binary).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '')
}

/** The user id a cursor stands for; a 400 for anything `encodeCursor` cannot have written. */
export function decodeCursor(cursor: string): string {
  const refused = () =>
    problems.validation(
      [{ path: 'cursor', message: 'Not a cursor this API gave' }],
      'A query parameter is not valid',
    )
  if (!/^[A-Za-z0-9_-]+$/.test(cursor)) throw refused()
  let id: string
  try {
    const binary = atob(cursor.replaceAll('-', '+').replaceAll('_', '/'))
    const bytes = Uint8Array.from(binary, (ch) => ch.charCodeAt(0))
    id = new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    throw refused()
  }
  if (id.length < 1 || id.length > 128 || !isStorableString(id) || encodeCursor(id) !== cursor) {
    throw refused()
  }
  return id
}
