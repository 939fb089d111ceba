// Refresh tokens: opaque, 256 random bits, stored only as their SHA-256. Every use spends the
// token and issues its successor in the same family; the previous token presented again within
// the grace period while its successor is unused (a lost answer) rotates once more, any other
// re-use means it leaked and revokes the whole family (OAuth 2.0 Security BCP §4.14). Postgres
// decides each transition (migration 0006), serialised with every revocation on the family's
// row. A refresh token belongs to the environment that issued it: environments may share a
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
  /** When the refresh token expires (ms; the database's clock). */
  expiresAt: number
}

/** A grant's refresh token, with what the database knew about the agent when it made it. */
export interface IssuedGrant {
  refresh: IssuedRefreshToken
  /** The agent's agent-wide not-before (ms), read under the agent's row lock. */
  tokensNotBefore: number | null
  /** The database's clock at the grant (ms): the access token's `iat` is taken from it. */
  issuedAt: number
}

/**
 * Starts a family: its row and its first refresh token, in one statement that holds the
 * agent's row (shared), so an operator's agent-wide revocation running at the same time
 * either sees the new family or comes after it. Undefined when the agent is no longer active.
 * Times are the database's.
 */
export async function issueRefreshToken(
  db: Database,
  input: {
    agentId: string
    scope: string
    environment: Environment
    ttlSeconds: number
    /** RFC 8707: the family's default resource; absent, the API itself. */
    resource?: string
    /** RFC 9449: the DPoP key the family is bound to (its refreshes need proofs by it). */
    jkt?: string
  },
  trace?: Trace,
): Promise<IssuedGrant | undefined> {
  const token = PREFIX + randomToken(32)
  const familyId = crypto.randomUUID()
  const rows = await db.query<{ not_before_ms: string | null; now_ms: string }>(
    sql`WITH a AS (
          SELECT id, (extract(epoch FROM tokens_not_before) * 1000)::bigint AS not_before_ms
          FROM agents WHERE id = ${input.agentId} AND active FOR SHARE
        ), f AS (
          INSERT INTO refresh_token_families (id, agent_id, environment, resource, jkt)
          SELECT ${familyId}, a.id, ${input.environment}, ${input.resource ?? null}::text,
                 ${input.jkt ?? null}::text FROM a
          RETURNING id
        ), t AS (
          INSERT INTO refresh_tokens (token_hash, family_id, agent_id, scope, environment, issued_at, expires_at)
          SELECT ${await hashRefreshToken(token)}, f.id, ${input.agentId}, ${input.scope},
                 ${input.environment}, now(), now() + make_interval(secs => ${input.ttlSeconds}::integer)
          FROM f RETURNING 1
        )
        SELECT a.not_before_ms, (extract(epoch FROM now()) * 1000)::bigint AS now_ms FROM a, t`,
    { trace },
  )
  const row = rows[0]
  if (!row) return undefined
  const issuedAt = Number(row.now_ms)
  return {
    refresh: { token, familyId, expiresAt: issuedAt + input.ttlSeconds * 1000 },
    tokensNotBefore: msOrNull(row.not_before_ms),
    issuedAt,
  }
}

/**
 * The DPoP key thumbprint the family of `token` is bound to (RFC 9449 §5): a string, null when
 * the family is not bound, undefined when no such token exists here. Read before a rotation,
 * so a refresh without the key spends nothing (a family's binding never changes).
 */
export async function familyBinding(
  db: Database,
  token: string,
  environment: Environment,
  trace?: Trace,
): Promise<string | null | undefined> {
  const rows = await db.query<{ jkt: string | null }>(
    sql`SELECT f.jkt FROM refresh_tokens t JOIN refresh_token_families f ON f.id = t.family_id
        WHERE t.token_hash = ${await hashRefreshToken(token)} AND t.environment = ${environment}`,
    { trace, idempotent: true },
  )
  return rows[0] ? rows[0].jkt : undefined
}

export type RotationResult =
  | ({
      ok: true
      agentId: string
      scope: string
      allowedScopes: string[]
      /** The family's RFC 8707 resource (undefined: the API). */
      resource: string | undefined
      /** Rotated through the reuse grace period (a retry of a lost answer). */
      grace: boolean
    } & IssuedGrant)
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

type Refusal = Extract<RotationResult, { ok: false }>['reason']

interface RotationRow {
  result: Refusal | 'rotated'
  family: string | null
  agent: string | null
  granted_scope: string | null
  family_resource: string | null
  allowed: string[] | null
  not_before_ms: string | null
  issued_at_ms: string | null
  through_grace: boolean
}

/**
 * Spends `presented` and issues its successor, or says why not, in one call of the database's
 * `refresh_token_rotate` (migration 0006), which serialises it with every other change to the
 * family and to the agent (OAuth 2.0 Security BCP §4.14, RFC 9700 §4.14.2):
 *
 * - a live token rotates; concurrent uses of one token queue on the family's row lock;
 * - the immediately previous token presented again within `graceSeconds` of its first use,
 *   while its successor is still unused, by the same client, rotates too and retires that
 *   successor (the client lost the answer, or sent twice): 0 turns the grace period off;
 * - any other re-use revokes the whole family (the caller revokes its access tokens).
 *
 * A refusal never spends the token: `clientId` must own it; `scopes`, when asked for, must lie
 * within the original grant and what the agent is allowed today.
 */
export async function rotateRefreshToken(
  db: Database,
  presented: string,
  input: {
    environment: Environment
    ttlSeconds: number
    graceSeconds: number
    clientId?: string
    scopes?: readonly string[]
  },
  trace?: Trace,
): Promise<RotationResult> {
  const token = PREFIX + randomToken(32)
  const rows = await db.query<RotationRow>(
    sql`SELECT * FROM refresh_token_rotate(${await hashRefreshToken(presented)},
          ${await hashRefreshToken(token)}, ${input.environment}, ${input.clientId ?? null}::text,
          ${[...(input.scopes ?? [])]}::text[], ${input.ttlSeconds}::integer,
          ${input.graceSeconds}::integer)`,
    { trace },
  )
  const row = rows[0]
  if (!row) throw new Error('refresh_token_rotate returned no row')
  if (row.result !== 'rotated') {
    return {
      ok: false,
      reason: row.result,
      ...(row.result === 'reused' && row.agent && row.family
        ? { revokedFamily: { agentId: row.agent, familyId: row.family } }
        : {}),
    }
  }
  const issuedAt = Number(row.issued_at_ms)
  return {
    ok: true,
    agentId: row.agent!,
    scope: row.granted_scope!,
    allowedScopes: row.allowed ?? [],
    resource: row.family_resource ?? undefined,
    grace: row.through_grace,
    refresh: { token, familyId: row.family!, expiresAt: issuedAt + input.ttlSeconds * 1000 },
    tokensNotBefore: msOrNull(row.not_before_ms),
    issuedAt,
  }
}

/**
 * RFC 7009 for refresh tokens: revokes the token's whole family if `agentId` owns it (in this
 * environment), on the family's row — the lock a rotation holds, so a rotation running at the
 * same time either finished first (its successor belongs to the revoked family) or sees the
 * revocation. Returns the family, or undefined when there was nothing of the agent's to revoke.
 */
export async function revokeRefreshToken(
  db: Database,
  presented: string,
  agentId: string,
  environment: Environment,
  trace?: Trace,
): Promise<string | undefined> {
  // One statement: a data-modifying CTE runs whether or not the query reads it. The tokens'
  // own columns are for operators; the family's row is what every check reads.
  const rows = await db.query<{ id: string }>(
    sql`WITH target AS (
          SELECT family_id FROM refresh_tokens
          WHERE token_hash = ${await hashRefreshToken(presented)} AND agent_id = ${agentId}
            AND environment = ${environment}
        ), family AS (
          UPDATE refresh_token_families f
          SET revoked_at = coalesce(f.revoked_at, now()),
              revoked_why = coalesce(f.revoked_why, 'revoked_by_agent')
          WHERE f.id IN (SELECT family_id FROM target)
          RETURNING f.id
        ), tokens AS (
          UPDATE refresh_tokens SET revoked_at = now(), revoked_why = 'revoked_by_agent'
          WHERE revoked_at IS NULL AND family_id IN (SELECT id FROM family)
          RETURNING 1
        )
        SELECT id FROM family`,
    { trace },
  )
  // Also when already revoked: its access tokens are revoked (again) all the same.
  return rows[0]?.id
}

/** What introspection may say about a refresh token (RFC 7662 §2.2). */
export interface RefreshTokenState {
  /** Its hash: names the token without being it. */
  tokenHash: string
  agentId: string
  scope: string
  resource: string | undefined
  /** The thumbprint of the DPoP key its family is bound to (RFC 9449 §5), if any. */
  jkt: string | undefined
  /** ms, the database's clock. */
  issuedAt: number
  expiresAt: number
  /** Usable now: unspent, not retired (or retired by a concurrent refresh while its live
   * sibling is unused: it still rotates), its family not revoked (an agent-wide revocation
   * revokes every family), unexpired, its agent active. */
  active: boolean
}

/** The refresh token `presented` in `environment`, if it exists (a read, no lock). */
export async function describeRefreshToken(
  db: Database,
  presented: string,
  environment: Environment,
  trace?: Trace,
): Promise<RefreshTokenState | undefined> {
  const rows = await db.query<{
    token_hash: string
    agent_id: string
    scope: string
    resource: string | null
    jkt: string | null
    issued_at_ms: string
    expires_at_ms: string
    active: boolean
  }>(
    sql`SELECT t.token_hash, t.agent_id, t.scope, f.resource, f.jkt,
               (extract(epoch FROM t.issued_at) * 1000)::bigint AS issued_at_ms,
               (extract(epoch FROM t.expires_at) * 1000)::bigint AS expires_at_ms,
               (t.spent_at IS NULL AND t.revoked_at IS NULL AND f.revoked_at IS NULL
                AND t.expires_at > now() AND a.active
                AND (t.retired_at IS NULL OR EXISTS (
                  -- A sibling retired by a concurrent refresh rotates while the live token is
                  -- its unused sibling (refresh_token_rotate): as usable, as active.
                  SELECT 1 FROM refresh_tokens l
                   WHERE l.family_id = t.family_id AND l.spent_at IS NULL
                     AND l.retired_at IS NULL AND l.revoked_at IS NULL
                     AND l.parent_hash = t.parent_hash AND l.expires_at > now()))) AS active
        FROM refresh_tokens t
        JOIN refresh_token_families f ON f.id = t.family_id
        JOIN agents a ON a.id = t.agent_id
        WHERE t.token_hash = ${await hashRefreshToken(presented)} AND t.environment = ${environment}`,
    { trace, idempotent: true },
  )
  const row = rows[0]
  if (!row) return undefined
  return {
    tokenHash: row.token_hash,
    agentId: row.agent_id,
    scope: row.scope,
    resource: row.resource ?? undefined,
    jkt: row.jkt ?? undefined,
    issuedAt: Number(row.issued_at_ms),
    expiresAt: Number(row.expires_at_ms),
    active: row.active,
  }
}
