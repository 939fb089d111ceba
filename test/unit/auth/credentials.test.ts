// Unknown agent ids and agents on the shared secret pay the same slow hash as an agent with its
// own secret, so the time of a refusal cannot tell which ids exist (attack-2). Counted as
// PBKDF2 derivations, never timed.
import { afterEach, describe, expect, test, vi } from 'vitest'
import { authenticateAgent } from '../../../src/auth/credentials.ts'
import { hashAgentSecret, PBKDF2_ITERATIONS } from '../../../src/auth/secret-hash.ts'
import type { Database } from '../../../src/db/client.ts'
import { Secret } from '../../../src/kernel/secret.ts'

/** A database holding at most one agent row, answering the lookup the way Postgres does. */
function holding(row?: Record<string, unknown>): Database {
  return { query: async () => (row ? [row] : []) } as unknown as Database
}

const agentRow = (secretHash: string | null) => ({
  id: 'a1',
  active: true,
  allowed_scopes: ['context:read'],
  secret_hash: secretHash,
  public_jwk: null,
  dpop_required: false,
  tokens_not_before_ms: null,
})

function countPbkdf2() {
  const spy = vi.spyOn(crypto.subtle, 'deriveBits')
  return () => spy.mock.calls.filter(([alg]) => (alg as { name?: string }).name === 'PBKDF2')
}

afterEach(() => vi.restoreAllMocks())

describe('agent authentication costs the same slow hash whoever asks', () => {
  const shared = new Secret('shared-secret-of-the-environment-0123456789')

  test.each([
    ['an unknown agent id', () => holding()],
    ['an agent on the shared secret', () => holding(agentRow(null))],
  ])('%s: one PBKDF2 derivation, at the stored iteration count', async (_name, db) => {
    const calls = countPbkdf2()
    expect(await authenticateAgent(db(), shared, 'a1', 'wrong')).toBeUndefined()
    expect(calls()).toHaveLength(1)
    expect((calls()[0]![0] as { iterations: number }).iterations).toBe(PBKDF2_ITERATIONS)
  })

  test('an agent with its own secret: one derivation too, and the right secret still opens it', async () => {
    const own = await hashAgentSecret('its-own-secret')
    const calls = countPbkdf2()
    expect(await authenticateAgent(holding(agentRow(own)), shared, 'a1', 'wrong')).toBeUndefined()
    expect(calls()).toHaveLength(1)
    expect(
      await authenticateAgent(holding(agentRow(own)), shared, 'a1', 'its-own-secret'),
    ).toBeDefined()
  })

  test('the shared secret still opens an agent without its own', async () => {
    expect(
      await authenticateAgent(holding(agentRow(null)), shared, 'a1', shared.reveal()),
    ).toBeDefined()
  })
})
