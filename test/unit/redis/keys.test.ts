// Redis key names (src/redis.ts): every variable part is escaped, so no two different tuples of
// parts name the same key, whatever ':' agent ids and idempotency keys hold (attack F5).
import fc from 'fast-check'
import { describe, expect, test } from 'vitest'
import { Secret } from '../../../src/kernel/secret.ts'
import { createRedisStore, keyPart } from '../../../src/redis.ts'

const store = createRedisStore({
  config: { url: 'https://redis.invalid', token: new Secret('x') },
  keyPrefix: 'agent-api:test:',
  timeoutMs: 1000,
})

describe('Redis keys', () => {
  test('an agent id with a colon and a key with one never meet', () => {
    const a = store.key('progress', 'idem', 'demo-agent:2', 'K')
    const b = store.key('progress', 'idem', 'demo-agent', '2:K')
    expect(a).not.toBe(b)
    expect(a).toBe('agent-api:test:progress:idem:demo-agent%3A2:K')
    expect(b).toBe('agent-api:test:progress:idem:demo-agent:2%3AK')
  })

  test('parts without ":" or "%" keep their names (keys written before stay readable)', () => {
    expect(store.key('revoked', 'demo-agent', 'a1b2-c3')).toBe(
      'agent-api:test:revoked:demo-agent:a1b2-c3',
    )
    expect(keyPart('plain.id_-~')).toBe('plain.id_-~')
  })

  test('property: distinct tuples of parts give distinct keys (every key has a part)', () => {
    const part = fc.string({
      unit: fc.constantFrom('a', ':', '%', '3', 'A', '2', '5'),
      maxLength: 6,
    })
    fc.assert(
      fc.property(
        fc.array(part, { minLength: 1, maxLength: 4 }),
        fc.array(part, { minLength: 1, maxLength: 4 }),
        (x, y) => {
          const same = x.length === y.length && x.every((p, i) => p === y[i])
          expect(store.key(...x) === store.key(...y)).toBe(same)
        },
      ),
      { numRuns: 2000 },
    )
  })
})
