import fc from 'fast-check'
import { expect, test } from 'vitest'
import { distinctEvents } from '../../../src/progress/aggregate.ts'
import { canonicalJson, derivedKey } from '../../../src/progress/idempotency.ts'
import type { BufferedUpdate } from '../../../src/progress/model.ts'

const update = fc.record({
  id: fc.uuid(),
  batchId: fc.constant('b'),
  agentId: fc.constantFrom('a1', 'a2'),
  idempotencyKey: fc.constantFrom('k1', 'k2', 'k3', 'k4', 'k5', 'k6'),
  fingerprint: fc.constantFrom('f1:x', 'f1:y'),
  userId: fc.constantFrom('u1', 'u2'),
  taskId: fc.constantFrom('t1', 't2'),
  status: fc.constantFrom('in_progress' as const, 'completed' as const),
  progress: fc.integer({ min: 0, max: 100 }),
  data: fc.constant(null),
  occurredAt: fc
    .integer({ min: 0, max: 50 })
    .map((s) => new Date(1_700_000_000_000 + s * 1000).toISOString()),
  receivedAt: fc.integer({ min: 0, max: 5 }),
}) satisfies fc.Arbitrary<BufferedUpdate>

// Which event becomes current state is chosen in SQL, among the events recorded: that is
// property-tested against the real Postgres (test/integration/writer.property.test.ts).
test('property: one event per (agent, key, fingerprint), the first of each, in arrival order', () => {
  fc.assert(
    fc.property(fc.array(update, { maxLength: 40 }), (updates) => {
      const events = distinctEvents(updates)
      const ids = events.map((e) => `${e.agentId}/${e.idempotencyKey}/${e.fingerprint}`)
      expect(new Set(ids).size).toBe(ids.length)
      const firsts = updates.filter(
        (u, i) =>
          updates.findIndex(
            (v) =>
              v.agentId === u.agentId &&
              v.idempotencyKey === u.idempotencyKey &&
              v.fingerprint === u.fingerprint,
          ) === i,
      )
      expect(events).toEqual(firsts)
    }),
    { numRuns: 3000 },
  )
})

test('derived idempotency keys depend on content only, not on key order', async () => {
  const a = {
    user_id: 'u',
    task_id: 't',
    status: 'in_progress' as const,
    progress: 1,
    occurred_at: '2026-01-01T00:00:00Z',
    data: { b: 1, a: [1, { y: 2, x: 1 }] },
  }
  const b = {
    data: { a: [1, { x: 1, y: 2 }], b: 1 },
    occurred_at: '2026-01-01T00:00:00Z',
    progress: 1,
    status: 'in_progress' as const,
    task_id: 't',
    user_id: 'u',
  }
  expect(await derivedKey(a)).toBe(await derivedKey(b))
  expect(await derivedKey({ ...a, progress: 2 })).not.toBe(await derivedKey(a))
  expect(await derivedKey({ ...a, idempotency_key: 'ignored' })).toBe(await derivedKey(a))
  expect(canonicalJson({ b: 1, a: undefined, c: null })).toBe('{"b":1,"c":null}')
})
