// Refresh tokens: opaque, 256 random bits, stored only as their SHA-256. Every use spends
// the token and issues its successor in the same family in one statement; presenting a spent
// token again means it leaked, so the whole family is revoked (OAuth 2.0 Security BCP §4.14).
// A refresh token belongs to the environment that issued it: environments may share a
// database, and another environment's token is, to this one, unknown.
import type { Environment } from '../config/environment.ts'
import { type Database, sql } from '../db/client.ts'
import { base64url, randomToken, sha256 } from '../kernel/bytes.ts'
import type { Trace } from '../kernel/trace.ts'
import { msOrNull } from './credentials.ts'

const PREFIX = 'rt_'

export function looksLikeRefreshToken(token: string): boolean {
  return token.startsWith(PREFIX) && token.length === PREFIX.length + 43
}

export async function hashRefreshToken(token: string): Promise<string> {
  return base64url(await sha256(token))
}

export interface IssuedRefreshToken {
  token: string
  familyId: string
  expiresAt: number
}

export async function issueRefreshToken(
  db: Database,
  input: {
    agentId: string
    scope: string
    environment: Environment
    ttlSeconds: number
    now: number
    familyId?: string
  },
  trace?: Trace,
): Promise<IssuedRefreshToken> {
  const token = PREFIX + randomToken(32)
  const familyId = input.familyId ?? crypto.randomUUID()
  const expiresAt = input.now + input.ttlSeconds * 1000
  await db.query(
    sql`INSERT INTO refresh_tokens (token_hash, family_id, agent_id, scope, environment, issued_at, expires_at)
        VALUES (${await hashRefreshToken(token)}, ${familyId}, ${input.agentId}, ${input.scope},
                ${input.environment}, ${new Date(input.now).toISOString()},
                ${new Date(expiresAt).toISOString()})`,
    { trace },
  )
  return { token, familyId, expiresAt }
}

export type RotationResult =
  | {
      ok: true
      agentId: string
      scope: string
      allowedScopes: string[]
      /** The agent's agent-wide not-before (ms), read in the same statement. */
      tokensNotBefore: number | null
      next: IssuedRefreshToken
    }
  | {
      ok: false
      reason:
        | 'unknown'
        | 'expired'
        | 'revoked'
        | 'reused'
        | 'agent_inactive'
        | 'wrong_client'
        | 'scope_exceeded'
      /** Set when reuse was detected: the family just revoked, whose access tokens go too. */
      revokedFamily?: { agentId: string; familyId: string }
    }

interface RotatedRow {
  agent_id: string
  scope: string
  family_id: string
  allowed_scopes: string[]
  tokens_not_before_ms: string | null
}

interface StateRow {
  family_id: string
  agent_id: string
  spent_at: string | null
  revoked_at: string | null
  expired: boolean
  active: boolean
}

/**
 * Spends `presented` and issues its successor, atomically: the UPDATE's row lock makes two
 * concurrent uses of one token resolve to one winner, and the loser is treated as reuse.
 *
 * A refusal must not spend the token (its owner would never see the successor, and its next
 * refresh would look like reuse), so the request's own conditions are part of the UPDATE:
 * `clientId`, when the client authenticated, must own the token; `scopes`, when asked for,
 * must lie within the original grant and what the agent is allowed today; with none asked
 * for, some of the original grant must still be allowed.
 */
export async function rotateRefreshToken(
  db: Database,
  presented: string,
  input: {
    environment: Environment
    ttlSeconds: number
    now: number
    clientId?: string
    scopes?: readonly string[]
  },
  trace?: Trace,
): Promise<RotationResult> {
  const clientId = input.clientId ?? null
  const wanted = [...(input.scopes ?? [])]
  const presentedHash = await hashRefreshToken(presented)
  const token = PREFIX + randomToken(32)
  const nowIso = new Date(input.now).toISOString()
  const expiresAt = input.now + input.ttlSeconds * 1000
  const rows = await db.query<RotatedRow>(
    sql`WITH spent AS (
          UPDATE refresh_tokens t SET spent_at = ${nowIso}
          FROM agents a
          WHERE t.token_hash = ${presentedHash} AND a.id = t.agent_id AND a.active
            AND t.environment = ${input.environment}
            AND t.spent_at IS NULL AND t.revoked_at IS NULL AND t.expires_at > ${nowIso}
            AND (${clientId}::text IS NULL OR t.agent_id = ${clientId}::text)
            AND CASE WHEN cardinality(${wanted}::text[]) = 0
                  THEN string_to_array(t.scope, ' ') && a.allowed_scopes
                  ELSE ${wanted}::text[] <@ string_to_array(t.scope, ' ')
                       AND ${wanted}::text[] <@ a.allowed_scopes END
          RETURNING t.family_id, t.agent_id, t.scope, a.allowed_scopes,
                    (extract(epoch FROM a.tokens_not_before) * 1000)::bigint AS tokens_not_before_ms
        ), next AS (
          INSERT INTO refresh_tokens (token_hash, family_id, agent_id, scope, environment, issued_at, expires_at)
          SELECT ${await hashRefreshToken(token)}, family_id, agent_id, scope, ${input.environment},
                 ${nowIso}, ${new Date(expiresAt).toISOString()}
          FROM spent
          RETURNING family_id
        )
        SELECT s.agent_id, s.scope, s.family_id, s.allowed_scopes, s.tokens_not_before_ms
        FROM spent s JOIN next USING (family_id)`,
    { trace },
  )
  const row = rows[0]
  if (row) {
    return {
      ok: true,
      agentId: row.agent_id,
      scope: row.scope,
      allowedScopes: row.allowed_scopes,
      tokensNotBefore: msOrNull(row.tokens_not_before_ms),
      next: { token, familyId: row.family_id, expiresAt },
    }
  }

  // Not rotated: find out why, and revoke the family if this was a replay.
  const state = await db.query<StateRow>(
    sql`SELECT t.family_id, t.agent_id, t.spent_at, t.revoked_at, t.expires_at <= ${nowIso} AS expired,
               a.active
        FROM refresh_tokens t JOIN agents a ON a.id = t.agent_id
        WHERE t.token_hash = ${presentedHash} AND t.environment = ${input.environment}`,
    { trace },
  )
  const found = state[0]
  if (!found) return { ok: false, reason: 'unknown' }
  if (found.revoked_at) return { ok: false, reason: 'revoked' }
  if (!found.active) return { ok: false, reason: 'agent_inactive' }
  if (found.spent_at) {
    await revokeFamily(db, found.family_id, 'reuse_detected', input.now, trace)
    return {
      ok: false,
      reason: 'reused',
      revokedFamily: { agentId: found.agent_id, familyId: found.family_id },
    }
  }
  if (found.expired) return { ok: false, reason: 'expired' }
  // Live, but this request's conditions refused it (left unspent).
  if (clientId !== null && found.agent_id !== clientId) return { ok: false, reason: 'wrong_client' }
  return { ok: false, reason: 'scope_exceeded' }
}

export async function revokeFamily(
  db: Database,
  familyId: string,
  why: string,
  now: number,
  trace?: Trace,
): Promise<void> {
  await db.query(
    sql`UPDATE refresh_tokens SET revoked_at = ${new Date(now).toISOString()}, revoked_why = ${why}
        WHERE family_id = ${familyId} AND revoked_at IS NULL`,
    { trace },
  )
}

/**
 * RFC 7009 for refresh tokens: revokes the token's whole family if `agentId` owns it (in this
 * environment). Returns the family, or undefined when there was nothing of the agent's to revoke.
 */
export async function revokeRefreshToken(
  db: Database,
  presented: string,
  agentId: string,
  environment: Environment,
  now: number,
  trace?: Trace,
): Promise<string | undefined> {
  // One statement: a data-modifying CTE runs whether or not the query reads it.
  const rows = await db.query<{ family_id: string }>(
    sql`WITH target AS (
          SELECT family_id FROM refresh_tokens
          WHERE token_hash = ${await hashRefreshToken(presented)} AND agent_id = ${agentId}
            AND environment = ${environment}
        ), revoked AS (
          UPDATE refresh_tokens SET revoked_at = ${new Date(now).toISOString()},
                                    revoked_why = 'revoked_by_agent'
          WHERE revoked_at IS NULL AND family_id IN (SELECT family_id FROM target)
          RETURNING 1
        )
        SELECT family_id FROM target`,
    { trace },
  )
  // Also when already revoked: its access tokens are revoked (again) all the same.
  return rows[0]?.family_id
}
