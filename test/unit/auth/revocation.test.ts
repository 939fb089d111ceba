// The per-isolate revocation store: one agent's revocations never push out another's, a full
// share revokes more (never less), and a full store refuses rather than forgets.
import fc from 'fast-check'
import { describe, expect, test } from 'vitest'
import {
  IsolateRevocations,
  RevocationList,
  RevocationStoreFull,
} from '../../../src/auth/revocation.ts'

const LIFE = 900_000
const subject = (sub: string, jti: string, iat: number, sid?: string) => ({
  sub,
  jti,
  iat,
  ...(sid ? { sid } : {}),
})

describe('IsolateRevocations', () => {
  test('another agent’s flood of revocations never evicts one agent’s', () => {
    const store = new IsolateRevocations({ maxPerAgent: 10, maxAgents: 10 })
    const now = 1_000_000
    store.add('victim', 't:keep-me', now + LIFE, now, LIFE)
    for (let i = 0; i < 60; i++) store.add('flooder', `t:junk-${i}`, now + LIFE, now, LIFE)
    expect(store.has(subject('victim', 'keep-me', 999), now + 1)).toBe(true)
    expect(store.has(subject('victim', 'other', 999), now + 1)).toBe(false)
  })

  test('a full share revokes every token of the agent issued so far, never fewer', () => {
    const store = new IsolateRevocations({ maxPerAgent: 3, maxAgents: 10 })
    const now = 5_000_250
    for (let i = 0; i < 4; i++) store.add('a', `t:j${i}`, now + LIFE, now, LIFE)
    // Every revoked jti is still refused, and so is every other token issued up to now.
    for (let i = 0; i < 4; i++) expect(store.has(subject('a', `j${i}`, 5000), now)).toBe(true)
    expect(store.has(subject('a', 'never-revoked', 4990), now)).toBe(true)
    expect(store.has(subject('a', 'same-second', 5000), now)).toBe(true)
    // Tokens issued in a later second are not, nor other agents'.
    expect(store.has(subject('a', 'later', 5001), now + 1000)).toBe(false)
    expect(store.has(subject('b', 'x', 5000), now)).toBe(false)
    // Once every token it could cover has expired, the wholesale revocation ends.
    expect(store.has(subject('a', 'old', 5000), now + LIFE + 1)).toBe(false)
  })

  test('expired entries make room before anything is revoked wholesale', () => {
    const store = new IsolateRevocations({ maxPerAgent: 2, maxAgents: 10 })
    store.add('a', 't:1', 1500, 1000, LIFE)
    store.add('a', 't:2', 1500, 1000, LIFE)
    store.add('a', 't:3', 9000, 2000, LIFE) // the two above have expired
    expect(store.has(subject('a', 'unrelated', 1), 2000)).toBe(false)
    expect(store.has(subject('a', '3', 1), 2000)).toBe(true)
  })

  test('a store holding as many agents as it may refuses a new one (nothing is forgotten)', () => {
    const store = new IsolateRevocations({ maxPerAgent: 5, maxAgents: 2 })
    store.add('a', 't:1', 10_000, 0, LIFE)
    store.add('b', 't:1', 10_000, 0, LIFE)
    expect(() => store.add('c', 't:1', 10_000, 0, LIFE)).toThrow(RevocationStoreFull)
    expect(store.has(subject('a', '1', 0), 1)).toBe(true)
    expect(store.has(subject('b', '1', 0), 1)).toBe(true)
    // When an agent's entries have expired, its place is free again.
    store.add('c', 't:1', 20_000, 10_001, LIFE)
    expect(store.has(subject('c', '1', 0), 10_002)).toBe(true)
  })

  test('a family revocation covers every token carrying that sid', () => {
    const store = new IsolateRevocations({ maxPerAgent: 5, maxAgents: 5 })
    store.add('a', 'f:fam-1', 10_000, 0, LIFE)
    expect(store.has(subject('a', 'x', 0, 'fam-1'), 1)).toBe(true)
    expect(store.has(subject('a', 'x', 0, 'fam-2'), 1)).toBe(false)
    expect(store.has(subject('a', 'x', 0), 1)).toBe(false)
  })

  test('property: whatever the schedule, a revocation is refused until it expires', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c'), fc.integer({ min: 0, max: 30 })), {
          maxLength: 200,
        }),
        (ops) => {
          const store = new IsolateRevocations({ maxPerAgent: 4, maxAgents: 3 })
          const revoked: [string, string][] = []
          let now = 1_000_000
          for (const [agent, n] of ops) {
            now += 7
            store.add(agent, `t:${n}`, now + LIFE, now, LIFE)
            revoked.push([agent, String(n)])
          }
          for (const [agent, jti] of revoked) {
            // A token issued before its revocation (iat in the past) stays refused.
            if (!store.has(subject(agent, jti, 999), now)) return false
          }
          return true
        },
      ),
    )
  })
})

describe('RevocationList without Redis', () => {
  test('a cache bound of 0 does not turn revocation off', async () => {
    const list = new RevocationList({
      checkTtlMs: 2000,
      cacheMaxEntries: 0,
      maxPerAgent: 100,
      maxAgents: 100,
    })
    expect(await list.revokeToken('a', 'jti-1', 2000, 1_000_000, LIFE)).toBe('isolate')
    expect(await list.isRevoked(subject('a', 'jti-1', 999), 1_000_001)).toBe(true)
    expect(await list.revokeToken('a', 'jti-2', 999, 1_000_000, LIFE)).toBe('expired')
  })
})
