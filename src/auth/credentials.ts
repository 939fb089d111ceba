// Agent credentials. An agent must exist and be active; its own secret hash, when set,
// replaces the environment's shared secret. Unknown agent, wrong secret and inactive agent
// take the same path and the same time, and give the same answer.
import type { Secret } from '../config/secret.ts'
import { type Database, sql } from '../db/client.ts'
import type { Trace } from '../trace.ts'
import { base64url, fromBase64url, sha256, timingSafeEqual } from './encoding.ts'

export interface AgentRecord {
  id: string
  active: boolean
  allowedScopes: string[]
}

interface AgentRow {
  id: string
  active: boolean
  allowed_scopes: string[]
  secret_hash: string | null
}

/** The stored form of an agent's own secret: "sha256$<base64url digest>". */
export async function hashAgentSecret(secret: string): Promise<string> {
  return `sha256$${base64url(await sha256(secret))}`
}

export async function findAgent(
  db: Database,
  agentId: string,
  trace?: Trace,
): Promise<(AgentRecord & { secretHash: string | null }) | undefined> {
  const rows = await db.query<AgentRow>(
    sql`SELECT id, active, allowed_scopes, secret_hash FROM agents WHERE id = ${agentId}`,
    { trace },
  )
  const row = rows[0]
  return row
    ? {
        id: row.id,
        active: row.active,
        allowedScopes: row.allowed_scopes,
        secretHash: row.secret_hash,
      }
    : undefined
}

/**
 * The agent, if `presented` is its secret and it is active; otherwise undefined. Agent
 * secrets are random credentials, not passwords, so one SHA-256 is the right cost (as for API
 * keys); comparing digests keeps the comparison constant-time whatever the inputs' lengths.
 */
export async function authenticateAgent(
  db: Database,
  sharedSecret: Secret,
  agentId: string,
  presented: string,
  trace?: Trace,
): Promise<AgentRecord | undefined> {
  const [agent, presentedDigest, sharedDigest] = await Promise.all([
    findAgent(db, agentId, trace),
    sha256(presented),
    sha256(sharedSecret.reveal()),
  ])
  const own = agent?.secretHash
    ? fromBase64url(agent.secretHash.slice('sha256$'.length))
    : undefined
  // With no such agent, compare against the shared digest anyway: same work, same timing.
  const expected = own ?? sharedDigest
  const matches = timingSafeEqual(presentedDigest, expected)
  if (!agent?.active || !matches) return undefined
  return { id: agent.id, active: agent.active, allowedScopes: agent.allowedScopes }
}
