// Who a verified access token speaks for, and whether it still holds. An agent's own token:
// the agent (`sub` = `client_id`). A delegated token (RFC 8693 §4.1): the agent `client_id`
// (= `act.sub`) acting for the one user `sub`. Everything that ends an agent's tokens early —
// revoking the token, its refresh-token family, the agent's token it was exchanged for, an
// agent-wide revocation, deactivation — is checked here, for every kind of token alike.
import type { Database } from '../db/client.ts'
import type { CallScope } from '../kernel/scope.ts'
import type { AccessClaims } from './access-token.ts'
import { statusRefusal } from './agent-status.ts'
import type { RevocationSubject } from './revocation.ts'
import type { AuthState } from './state.ts'

export interface Principal {
  /** The agent: the client the token was issued to. */
  agentId: string
  /** The user a delegated token acts for; undefined for the agent's own token. */
  actingFor?: string
}

export function principalOf(claims: AccessClaims): Principal {
  return claims.act
    ? { agentId: claims.client_id, actingFor: claims.sub }
    : { agentId: claims.client_id }
}

/** The revocation-list entries that can end the token: its own, and its parent's. */
export function revocationSubjects(claims: AccessClaims): RevocationSubject[] {
  const own = { sub: claims.client_id, jti: claims.jti, sid: claims.sid, iat: claims.iat }
  return claims.parent_jti ? [own, { ...own, jti: claims.parent_jti }] : [own]
}

/**
 * Why a verified token no longer holds (`revoked`, `agent_inactive`), or undefined: at once
 * when every answer is cached, else a promise. Lookups run side by side, each from its own
 * short cache (REVOCATION_CHECK_TTL_MS, GRANT_CACHE_TTL_MS).
 */
export function tokenRefusal(
  deps: { auth: Pick<AuthState, 'revocations' | 'agents'>; db?: Database },
  claims: AccessClaims,
  now: number,
  scope?: CallScope,
): Refusal | undefined | Promise<Refusal | undefined> {
  const { auth, db } = deps
  const subjects = revocationSubjects(claims)
  // A busy agent's answers are all cached: decided at once, without a promise per lookup.
  const status = db ? auth.agents.fresh(claims.client_id, now) : undefined
  if (!db || status) {
    const revoked = subjects.map((subject) => auth.revocations.known(subject, now))
    if (!revoked.includes(undefined)) {
      if (revoked.includes(true)) return 'revoked'
      return status ? statusRefusal(status, claims.iat) : undefined
    }
  }
  return lookUp(deps, claims, subjects, now, scope)
}

type Refusal = 'revoked' | 'agent_inactive'

async function lookUp(
  deps: { auth: Pick<AuthState, 'revocations' | 'agents'>; db?: Database },
  claims: AccessClaims,
  subjects: readonly RevocationSubject[],
  now: number,
  scope?: CallScope,
): Promise<Refusal | undefined> {
  const { auth, db } = deps
  const [status, ...revoked] = await Promise.all([
    db ? auth.agents.status(db, claims.client_id, now, scope) : undefined,
    ...subjects.map((subject) => auth.revocations.isRevoked(subject, now, scope)),
  ])
  if (revoked.some(Boolean)) return 'revoked'
  return status ? statusRefusal(status, claims.iat) : undefined
}
