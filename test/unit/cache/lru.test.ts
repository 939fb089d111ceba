import fc from 'fast-check'
import { describe, expect, test } from 'vitest'
import { BoundedLru } from '../../../src/cache/lru.ts'

describe('BoundedLru', () => {
  test('fresh until its TTL, stale until its stale window, then gone', () => {
    const lru = new BoundedLru<string, number>({ maxEntries: 10 })
    lru.set('a', 1, { now: 0, ttlMs: 100, staleMs: 50 })
    expect(lru.get('a', 99)?.value).toBe(1)
    expect(lru.get('a', 100)).toBeUndefined()
    expect(lru.getStale('a', 149)?.value).toBe(1)
    expect(lru.getStale('a', 150)).toBeUndefined()
    expect(lru.size).toBe(0)
  })

  test('evicts the least recently used entry first', () => {
    const lru = new BoundedLru<string, number>({ maxEntries: 2 })
    lru.set('a', 1, { now: 0, ttlMs: 1000 })
    lru.set('b', 2, { now: 0, ttlMs: 1000 })
    lru.get('a', 1) // a is now more recent than b
    lru.set('c', 3, { now: 2, ttlMs: 1000 })
    expect([...lru.keys()]).toEqual(['a', 'c'])
    expect(lru.evictions).toBe(1)
  })

  test('never stores what cannot fit', () => {
    const lru = new BoundedLru<string, string>({ maxEntries: 5, maxBytes: 10 })
    lru.set('small', 'x', { now: 0, ttlMs: 10, bytes: 4 })
    expect(lru.set('huge', 'y', { now: 0, ttlMs: 10, bytes: 11 })).toBe(false)
    expect(lru.get('small', 1)?.value).toBe('x')
    expect(lru.set('expired', 'z', { now: 0, ttlMs: 0 })).toBe(false)
  })

  type Op =
    | { kind: 'set'; key: number; bytes: number; ttl: number }
    | { kind: 'get'; key: number }
    | { kind: 'delete'; key: number }
    | { kind: 'tick'; ms: number }

  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({
      kind: fc.constant('set' as const),
      key: fc.integer({ min: 0, max: 20 }),
      bytes: fc.integer({ min: 0, max: 40 }),
      ttl: fc.integer({ min: 1, max: 200 }),
    }),
    fc.record({ kind: fc.constant('get' as const), key: fc.integer({ min: 0, max: 20 }) }),
    fc.record({ kind: fc.constant('delete' as const), key: fc.integer({ min: 0, max: 20 }) }),
    fc.record({ kind: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 100 }) }),
  )

  test('property: never exceeds its entry or byte bound, and evicts least recently used first', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 100 }),
        fc.array(op, { maxLength: 200 }),
        (maxEntries, maxBytes, ops) => {
          const lru = new BoundedLru<number, number>({ maxEntries, maxBytes })
          // A model: recency order of live keys with their sizes and expiry.
          let model: { key: number; bytes: number; staleUntil: number }[] = []
          let now = 0
          for (const o of ops) {
            if (o.kind === 'tick') now += o.ms
            else if (o.kind === 'delete') {
              lru.delete(o.key)
              model = model.filter((m) => m.key !== o.key)
            } else if (o.kind === 'get') {
              const hit = lru.getStale(o.key, now)
              const m = model.find((x) => x.key === o.key)
              if (m && now < m.staleUntil) {
                expect(hit).toBeDefined()
                model = [...model.filter((x) => x.key !== o.key), m]
              } else {
                expect(hit).toBeUndefined()
                model = model.filter((x) => x.key !== o.key)
              }
            } else {
              const stored = lru.set(o.key, o.key, { now, ttlMs: o.ttl, bytes: o.bytes })
              model = model.filter((m) => m.key !== o.key)
              if (stored) {
                model.push({ key: o.key, bytes: o.bytes, staleUntil: now + o.ttl })
                const total = () => model.reduce((sum, m) => sum + m.bytes, 0)
                while (model.length > maxEntries || total() > maxBytes) model.shift()
              }
            }
            expect(lru.size).toBeLessThanOrEqual(maxEntries)
            expect(lru.bytes).toBeLessThanOrEqual(maxBytes)
            expect([...lru.keys()]).toEqual(model.map((m) => m.key))
          }
        },
      ),
      { numRuns: 300 },
    )
  })
})
