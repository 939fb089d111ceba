// Agent credentials. An agent must exist and be active; its own secret hash, when set,
// replaces the environment's shared secret. Unknown agent, wrong secret and inactive agent
// give the same answer, in about the same time: an agent without its own secret (or no agent)
// pays the same slow hash against a stand-in, so timing cannot tell which ids have secrets.

import { type Database, sql } from '../db/client.ts'
import { sha256, timingSafeEqual } from '../kernel/bytes.ts'
import type { CallScope } from '../kernel/scope.ts'
import type { Secret } from '../kernel/secret.ts'
import { hashAgentSecret, verifyAgentSecret } from './secret-hash.ts'

export interface AgentRecord {
  id: string
  active: boolean
  allowedScopes: string[]
  /** Access tokens issued before this instant (ms) are revoked (agent-wide revocation). */
  tokensNotBefore: number | null
  /** RFC 9449: every token request of the agent must carry a DPoP proof. */
  dpopRequired: boolean
}

/** What a key-bound agent registered: its public JWK (RFC 7517), for `private_key_jwt`. */
export type PublicJwk = Record<string, unknown>

interface AgentRow {
  id: string
  active: boolean
  allowed_scopes: string[]
  secret_hash: string | null
  tokens_not_before_ms: string | null
  public_jwk: PublicJwk | string | null
  dpop_required: boolean
}

/** Milliseconds from a bigint column (Neon sends numbers of that size as text). */
export function msOrNull(value: string | number | null): number | null {
  return value === null ? null : Number(value)
}

export async function findAgent(
  db: Database,
  agentId: string,
  scope?: CallScope,
): Promise<(AgentRecord & { secretHash: string | null; publicJwk: PublicJwk | null }) | undefined> {
  const rows = await db.query<AgentRow>(
    sql`SELECT id, active, allowed_scopes, secret_hash, public_jwk, dpop_required,
               (extract(epoch FROM tokens_not_before) * 1000)::bigint AS tokens_not_before_ms
        FROM agents WHERE id = ${agentId}`,
    { ...scope, idempotent: true },
  )
  const row = rows[0]
  return row
    ? {
        id: row.id,
        active: row.active,
        allowedScopes: row.allowed_scopes,
        secretHash: row.secret_hash,
        tokensNotBefore: msOrNull(row.tokens_not_before_ms),
        dpopRequired: row.dpop_required === true,
        publicJwk: typeof row.public_jwk === 'string' ? JSON.parse(row.public_jwk) : row.public_jwk,
      }
    : undefined
}

/** The record a successful authentication yields (no secret, no key). */
export function agentRecord(agent: AgentRecord): AgentRecord {
  return {
    id: agent.id,
    active: agent.active,
    allowedScopes: agent.allowedScopes,
    tokensNotBefore: agent.tokensNotBefore,
    dpopRequired: agent.dpopRequired,
  }
}

/** A stored-format hash of no one's secret (random salt and key): costs what a real one does. */
const STAND_IN_HASH =
  'pbkdf2-sha256$100000$qFiER8l028tp_HefVRfx0A$7nBD0fKtugEVI4VICPe5cLKsHmIi8xr6m4WzFNaneKU'

/**
 * The agent, if `presented` is its secret and it is active; otherwise undefined. A secret
 * stored in an older format is re-hashed after a successful check (in the background: the
 * answer does not wait for it, and a lost upgrade is retried on the next use).
 */
export async function authenticateAgent(
  db: Database,
  sharedSecret: Secret,
  agentId: string,
  presented: string,
  scope?: CallScope,
): Promise<AgentRecord | undefined> {
  const agent = await findAgent(db, agentId, scope)
  let matches: boolean
  if (agent?.secretHash) {
    const check = await verifyAgentSecret(agent.secretHash, presented)
    matches = check.matches
    if (check.upgrade && agent.active) {
      scope?.defer?.(upgradeSecretHash(db, agent.id, agent.secretHash, presented, scope))
    }
  } else {
    // The shared secret, or (no such agent) the same work against it: the same answer; and
    // the slow hash an own secret costs, against a stand-in no secret matches.
    const [a, b] = await Promise.all([
      sha256(presented),
      sha256(sharedSecret.reveal()),
      verifyAgentSecret(STAND_IN_HASH, presented),
    ])
    matches = timingSafeEqual(a, b)
  }
  // A key-bound agent (RFC 7523) authenticates with its key only: no secret opens it.
  if (!agent?.active || !matches || agent.publicJwk) return undefined
  return agentRecord(agent)
}

/** Replaces `old` with a fresh hash of the same secret, unless the row changed meanwhile. */
async function upgradeSecretHash(
  db: Database,
  agentId: string,
  old: string,
  secret: string,
  scope?: CallScope,
): Promise<void> {
  const fresh = await hashAgentSecret(secret)
  await db.query(
    sql`UPDATE agents SET secret_hash = ${fresh}, updated_at = now()
        WHERE id = ${agentId} AND secret_hash = ${old}`,
    { trace: scope?.trace },
  )
}
