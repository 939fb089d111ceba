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

/** A Redis shared by the lists given it (a Map), that can fail like Upstash does. */
function sharedRedis() {
  const keys = new Map<string, number>()
  const state = { failure: undefined as Error | undefined }
  const client = {
    set: async (key: string, _value: string, options: { pxat: number }) => {
      keys.set(key, options.pxat)
      return 'OK'
    },
    exists: async (...names: string[]) => names.filter((n) => keys.has(n)).length,
  }
  const store = {
    client: client as never,
    key: (...parts: string[]) => parts.join(':'),
    async run<T>(_op: string, work: (c: never) => Promise<T>): Promise<T> {
      if (state.failure) throw state.failure
      return work(client as never)
    },
  }
  return { store, keys, state }
}

/**
 * A Postgres holding `token_revocations` in a Map, answering the two statements the list sends
 * (the real table and statements run in test/scenarios/tokens-hold.test.ts).
 */
function sharedPostgres() {
  const rows = new Map<string, number>()
  const state = { down: false }
  const db = {
    async query(statement: { text: string; params: readonly unknown[] }) {
      if (state.down) throw Object.assign(new Error('refused'), { name: 'TypeError' })
      const p = statement.params
      if (statement.text.includes('INSERT INTO token_revocations')) {
        const key = `${p[1]}|${p[2]}|${p[3]}`
        rows.set(key, Math.max(rows.get(key) ?? 0, Date.parse(String(p[4]))))
        return []
      }
      const [agent, now, jti, sid] = [p[0], Date.parse(String(p[1])), p[2], p[3]]
      const live = (kind: string, id: unknown) => (rows.get(`${agent}|${kind}|${id}`) ?? 0) > now
      return [{ revoked: live('token', jti) || (sid !== null && live('family', sid)) }]
    },
    transaction: async () => [],
  }
  return { db, rows, state }
}

const upstashError = (text: string) =>
  Object.assign(new Error(`${text}, command was: ["exists"]`), { name: 'UpstashError' })

function list(redis?: ReturnType<typeof sharedRedis>, pg?: ReturnType<typeof sharedPostgres>) {
  const l = new RevocationList({
    redis: redis?.store as never,
    checkTtlMs: 2000,
    cacheMaxEntries: 100,
    maxPerAgent: 3,
    maxAgents: 10,
  })
  if (pg) l.attachDatabase(pg.db as never, { timeoutMs: 1000 })
  return l
}

describe('RevocationList with Redis and Postgres (attack F2)', () => {
  const now = 10_000_000
  const exp = (now + LIFE) / 1000

  test('a revocation Redis took is kept here too: refused while both stores fail', async () => {
    const redis = sharedRedis()
    const pg = sharedPostgres()
    const here = list(redis, pg)
    expect(await here.revokeToken('a', 'j1', exp, now, LIFE)).toBe('global')
    redis.state.failure = upstashError('ERR max daily request limit exceeded')
    pg.state.down = true
    // Long after any cached answer: this isolate's own revocation still holds.
    expect(await here.isRevoked(subject('a', 'j1', 1), now + 60_000)).toBe(true)
  })

  test('while Redis fails, other isolates ask Postgres: the revocation holds everywhere', async () => {
    const redis = sharedRedis()
    const pg = sharedPostgres()
    expect(await list(redis, pg).revokeToken('a', 'j1', exp, now, LIFE)).toBe('global')
    expect(await list(redis, pg).revokeFamily('a', 'fam', now, LIFE)).toBe('global')
    redis.state.failure = Object.assign(new Error('timed out'), { name: 'TimeoutError' })
    const other = list(redis, pg)
    expect(await other.isRevoked(subject('a', 'j1', 1), now + 1)).toBe(true)
    expect(await other.isRevoked(subject('a', 'x', 1, 'fam'), now + 1)).toBe(true)
    expect(await other.isRevoked(subject('a', 'j2', 1), now + 1)).toBe(false)
    expect(await other.isRevoked(subject('b', 'j1', 1), now + 1)).toBe(false)
  })

  test('an ERR about the command is not an outage, nor "not revoked": Postgres decides', async () => {
    const redis = sharedRedis()
    const pg = sharedPostgres()
    await list(redis, pg).revokeToken('a', 'j1', exp, now, LIFE)
    redis.state.failure = upstashError('ERR wrong number of arguments for command')
    expect(await list(redis, pg).isRevoked(subject('a', 'j1', 1), now + 1)).toBe(true)
  })

  test('both stores failing: a token checked recently keeps its answer; any other is a 503', async () => {
    const redis = sharedRedis()
    const pg = sharedPostgres()
    const other = list(redis, pg)
    expect(await other.isRevoked(subject('a', 'checked', 1), now)).toBe(false)
    redis.state.failure = upstashError('ERR service unavailable')
    pg.state.down = true
    expect(await other.isRevoked(subject('a', 'checked', 1), now + 1999)).toBe(false)
    for (const [jti, at] of [
      ['checked', now + 2000],
      ['never-checked', now + 1],
    ] as const) {
      const err = await other.isRevoked(subject('a', jti, 1), at).catch((e: unknown) => e)
      expect(err).toMatchObject({
        problem: { status: 503, code: 'auth_unavailable', headers: { 'Retry-After': '5' } },
      })
    }
  })

  test('a store that failed the write makes the answer partial; it holds here whatever', async () => {
    for (const failing of ['redis', 'postgres'] as const) {
      const redis = sharedRedis()
      const pg = sharedPostgres()
      if (failing === 'redis') redis.state.failure = upstashError('ERR service unavailable')
      else pg.state.down = true
      const here = list(redis, pg)
      expect(await here.revokeToken('a', 'j1', exp, now, LIFE)).toBe('isolate')
      redis.state.failure = upstashError('ERR service unavailable')
      pg.state.down = true
      expect(await here.isRevoked(subject('a', 'j1', 1), now + 60_000)).toBe(true)
    }
  })

  test('revocations the stores hold never revoke wholesale here; unheld ones do', async () => {
    const redis = sharedRedis()
    const pg = sharedPostgres()
    const here = list(redis, pg) // 3 per agent
    for (let i = 0; i < 5; i++) await here.revokeToken('a', `j${i}`, exp, now, LIFE)
    expect(await here.isRevoked(subject('a', 'unrelated', 1), now + 1)).toBe(false)
    pg.state.down = true
    for (let i = 5; i < 8; i++) await here.revokeToken('a', `j${i}`, exp, now, LIFE)
    redis.state.failure = upstashError('ERR service unavailable')
    // The fourth held here only (the share was full): every token of the agent so far.
    expect(await here.isRevoked(subject('a', 'unrelated', 1), now + 1)).toBe(true)
    for (let i = 5; i < 8; i++)
      expect(await here.isRevoked(subject('a', `j${i}`, 1), now + 1)).toBe(true)
  })

  test('without Redis, Postgres makes a revocation global; failing, this isolate decides', async () => {
    const pg = sharedPostgres()
    expect(await list(undefined, pg).revokeToken('a', 'j1', exp, now, LIFE)).toBe('global')
    expect(await list(undefined, pg).isRevoked(subject('a', 'j1', 1), now + 1)).toBe(true)
    pg.state.down = true
    const here = list(undefined, pg)
    expect(await here.revokeToken('a', 'j2', exp, now, LIFE)).toBe('isolate')
    expect(await here.isRevoked(subject('a', 'j2', 1), now + 1)).toBe(true)
    // The documented per-isolate mode: no 503 for what Postgres cannot say.
    expect(await here.isRevoked(subject('a', 'j1', 1), now + 1)).toBe(false)
  })
})
