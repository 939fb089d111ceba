// The agent lifecycle, as operators run it (`npm run agents -- …`, CONTRACT.md "Operators"):
// create, rotate a secret, deactivate / reactivate, grant / ungrant a user, revoke every token,
// list. Each operation is one statement or one transaction, so it lands whole or not at all.
//
// Running isolates learn of a deactivation or an agent-wide revocation within
// GRANT_CACHE_TTL_MS (src/auth/agent-status.ts), of a removed grant within the same time
// (src/auth/grants.ts); refresh tokens stop at once (they are checked in Postgres).

import { SCOPES } from '../contract/token.ts'
import { type Database, type SqlStatement, sql } from '../db/client.ts'
import { randomToken } from '../kernel/bytes.ts'
import { CLIENT_KEY_ALGS } from './client-assertion.ts'
import { hashAgentSecret } from './secret-hash.ts'

/** What the agents table accepts as an id (its CHECK constraint). */
export const AGENT_ID = /^[A-Za-z0-9._:-]{1,128}$/

export class AgentAdminError extends Error {
  readonly code:
    | 'invalid_agent_id'
    | 'invalid_scope'
    | 'agent_exists'
    | 'no_such_agent'
    | 'no_such_user'
    | 'invalid_key'

  constructor(code: AgentAdminError['code'], message: string) {
    super(message)
    this.name = 'AgentAdminError'
    this.code = code
  }
}

export interface AgentSummary {
  id: string
  displayName: string | null
  active: boolean
  scopes: string[]
  /**
   * 'key' when it registered a public key (private_key_jwt only), 'own' when it has its own
   * secret, else it uses the environment's shared one.
   */
  secret: 'key' | 'own' | 'shared'
  /** Every token request must carry a DPoP proof (RFC 9449). */
  dpopRequired: boolean
  users: number
  tokensNotBefore: string | null
  createdAt: string
}

/** A new agent secret: 256 random bits, base64url (43 characters). */
export function newAgentSecret(): string {
  return randomToken(32)
}

function checkId(id: string): void {
  if (!AGENT_ID.test(id)) {
    throw new AgentAdminError(
      'invalid_agent_id',
      'An agent id is 1-128 characters of letters, digits, . _ : -',
    )
  }
}

function checkScopes(scopes: readonly string[]): void {
  const unknown = scopes.filter((s) => !(SCOPES as readonly string[]).includes(s))
  if (unknown.length) {
    throw new AgentAdminError('invalid_scope', `Unknown scope(s): ${unknown.join(', ')}`)
  }
}

/**
 * Creates an agent. With `ownSecret` (the default) it gets a fresh secret, returned once and
 * stored only as a salted hash; without, it authenticates with the environment's shared secret.
 */
export async function createAgent(
  db: Database,
  input: { id: string; displayName?: string; scopes?: readonly string[]; ownSecret?: boolean },
): Promise<{ secret?: string }> {
  checkId(input.id)
  const scopes = [...new Set(input.scopes ?? SCOPES)]
  checkScopes(scopes)
  const secret = input.ownSecret === false ? undefined : newAgentSecret()
  const hash = secret ? await hashAgentSecret(secret) : null
  const rows = await db.query<{ id: string }>(
    sql`INSERT INTO agents (id, display_name, allowed_scopes, secret_hash)
        VALUES (${input.id}, ${input.displayName ?? null}, ${scopes}, ${hash})
        ON CONFLICT (id) DO NOTHING RETURNING id`,
  )
  if (!rows[0]) throw new AgentAdminError('agent_exists', `Agent ${input.id} already exists`)
  return secret ? { secret } : {}
}

async function updateOne(db: Database, id: string, statement: SqlStatement) {
  checkId(id)
  const rows = await db.query<{ id: string }>(statement)
  if (!rows[0]) throw new AgentAdminError('no_such_agent', `No agent ${id}`)
}

/**
 * Gives the agent a new secret (returned once). The old one stops working at once; tokens
 * already issued stay valid until they expire (revoke them with `revokeAllTokens`).
 */
export async function rotateSecret(db: Database, id: string): Promise<{ secret: string }> {
  const secret = newAgentSecret()
  const hash = await hashAgentSecret(secret)
  await updateOne(
    db,
    id,
    sql`UPDATE agents SET secret_hash = ${hash}, updated_at = now() WHERE id = ${id} RETURNING id`,
  )
  return { secret }
}

/** JWK members that only a private (or symmetric) key has (RFC 7518 §6). */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k']

/**
 * Registers the agent's public JWK for RFC 7523 `private_key_jwt` (or removes it: null). From
 * then on only assertions signed by its private half authenticate the agent; no secret does.
 * Throws AgentAdminError `invalid_key` for anything but an EC, OKP or RSA public key whose
 * `alg`, if set, is one the token endpoint accepts.
 */
export async function setPublicKey(
  db: Database,
  id: string,
  jwk: Record<string, unknown> | null,
): Promise<void> {
  if (jwk !== null) {
    if (!['EC', 'OKP', 'RSA'].includes(String(jwk.kty))) {
      throw new AgentAdminError('invalid_key', 'The key must be an EC, OKP or RSA JWK')
    }
    if (PRIVATE_MEMBERS.some((m) => m in jwk)) {
      throw new AgentAdminError('invalid_key', 'Register the public key only (no "d")')
    }
    if (jwk.alg !== undefined && !(CLIENT_KEY_ALGS as readonly unknown[]).includes(jwk.alg)) {
      throw new AgentAdminError('invalid_key', `alg must be one of ${CLIENT_KEY_ALGS.join(', ')}`)
    }
  }
  const value = jwk === null ? null : JSON.stringify(jwk)
  await updateOne(
    db,
    id,
    sql`UPDATE agents SET public_jwk = ${value}::jsonb, updated_at = now() WHERE id = ${id} RETURNING id`,
  )
}

/** Requires (or stops requiring) a DPoP proof on every token request of the agent (RFC 9449). */
export async function setDpopRequired(db: Database, id: string, required: boolean): Promise<void> {
  await updateOne(
    db,
    id,
    sql`UPDATE agents SET dpop_required = ${required}, updated_at = now() WHERE id = ${id} RETURNING id`,
  )
}

/** Deactivates or reactivates. An inactive agent gets no token, and its tokens stop working. */
export async function setActive(db: Database, id: string, active: boolean): Promise<void> {
  await updateOne(
    db,
    id,
    sql`UPDATE agents SET active = ${active}, updated_at = now() WHERE id = ${id} RETURNING id`,
  )
}

/**
 * Revokes every token the agent holds: its refresh tokens at once, and its access tokens issued
 * before now (an agent-wide not-before) within GRANT_CACHE_TTL_MS. New tokens work at once.
 *
 * "Now" is the database's clock, read when the agent's row is locked: never the operator's
 * machine's, which may be minutes off (too early lets older tokens live on, too late refuses
 * new ones). The agent's row lock waits for rotations under way (they hold it shared), so a
 * successor one of them is inserting belongs to a family this revokes.
 */
export async function revokeAllTokens(db: Database, id: string): Promise<void> {
  checkId(id)
  const [updated] = await db.transaction([
    // Access tokens carry a whole-second iat, and one issued after an earlier revocation within
    // the same second carries that second rounded up (issuedAtFor): the new not-before lies past
    // both, by a millisecond, so every token issued before this revocation is refused by it.
    sql`UPDATE agents SET updated_at = now(), tokens_not_before = greatest(
          clock_timestamp(),
          CASE WHEN tokens_not_before = date_trunc('second', tokens_not_before)
               THEN tokens_not_before
               ELSE date_trunc('second', tokens_not_before) + interval '1 second' END
        ) + interval '1 millisecond'
        WHERE id = ${id} RETURNING id`,
    sql`UPDATE refresh_token_families f SET revoked_at = a.tokens_not_before, revoked_why = 'agent_revoked'
        FROM agents a WHERE a.id = ${id} AND f.agent_id = a.id AND f.revoked_at IS NULL`,
    sql`UPDATE refresh_tokens t SET revoked_at = a.tokens_not_before, revoked_why = 'agent_revoked'
        FROM agents a WHERE a.id = ${id} AND t.agent_id = a.id AND t.revoked_at IS NULL`,
  ])
  if (!updated?.[0]) throw new AgentAdminError('no_such_agent', `No agent ${id}`)
}

/** Lets the agent act for the user (idempotent). */
export async function grantUser(db: Database, agentId: string, userId: string): Promise<void> {
  checkId(agentId)
  const rows = await db.query<{ agent: boolean; user: boolean }>(
    sql`WITH ins AS (
          INSERT INTO agent_user_grants (agent_id, user_id)
          SELECT a.id, u.id FROM agents a, users u WHERE a.id = ${agentId} AND u.id = ${userId}
          ON CONFLICT DO NOTHING
        )
        SELECT EXISTS (SELECT 1 FROM agents WHERE id = ${agentId}) AS agent,
               EXISTS (SELECT 1 FROM users WHERE id = ${userId}) AS user`,
  )
  if (!rows[0]?.agent) throw new AgentAdminError('no_such_agent', `No agent ${agentId}`)
  if (!rows[0]?.user) throw new AgentAdminError('no_such_user', `No user ${userId}`)
}

/** Takes the grant away (idempotent); running isolates stop honouring it within the grant TTL. */
export async function ungrantUser(db: Database, agentId: string, userId: string): Promise<void> {
  checkId(agentId)
  const rows = await db.query<{ agent: boolean }>(
    sql`WITH del AS (
          DELETE FROM agent_user_grants WHERE agent_id = ${agentId} AND user_id = ${userId}
        )
        SELECT EXISTS (SELECT 1 FROM agents WHERE id = ${agentId}) AS agent`,
  )
  if (!rows[0]?.agent) throw new AgentAdminError('no_such_agent', `No agent ${agentId}`)
}

export async function listAgents(db: Database): Promise<AgentSummary[]> {
  const rows = await db.query<{
    id: string
    display_name: string | null
    active: boolean
    allowed_scopes: string[]
    own_secret: boolean
    has_key: boolean
    dpop_required: boolean
    users: number
    tokens_not_before: string | null
    created_at: string
  }>(
    sql`SELECT a.id, a.display_name, a.active, a.allowed_scopes, a.secret_hash IS NOT NULL AS own_secret,
               a.public_jwk IS NOT NULL AS has_key, a.dpop_required,
               (SELECT count(*)::int FROM agent_user_grants g WHERE g.agent_id = a.id) AS users,
               a.tokens_not_before, a.created_at
        FROM agents a ORDER BY a.id`,
  )
  return rows.map((r) => ({
    id: r.id,
    displayName: r.display_name,
    active: r.active,
    scopes: r.allowed_scopes,
    secret: r.has_key ? 'key' : r.own_secret ? 'own' : 'shared',
    dpopRequired: r.dpop_required,
    users: r.users,
    tokensNotBefore: r.tokens_not_before ? new Date(r.tokens_not_before).toISOString() : null,
    createdAt: new Date(r.created_at).toISOString(),
  }))
}
