// The one definition of storable input: strings, timestamps and JSON objects.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import * as z from 'zod/mini'
import {
  futureTimestampProblem,
  identifier,
  isStorableString,
  jsonIssues,
  MAX_JSON_DEPTH,
  normaliseTimestamp,
  storableJsonObject,
  storableTimestamp,
  unstorableReason,
} from '../../../src/contract/storable.ts'

describe('storable strings', () => {
  it.each([
    ['a\u0000b', 'NUL'],
    ['t\uDFFF', 'surrogate'],
    ['\uD800', 'surrogate'],
    ['x\uD800y', 'surrogate'],
    ['\uDC00\uD800', 'surrogate'],
  ])('refuses %j', (text, kind) => {
    expect(isStorableString(text)).toBe(false)
    expect(unstorableReason(text)).toMatch(kind === 'NUL' ? /NUL/ : /surrogate/)
    expect(identifier.safeParse(text).success).toBe(false)
  })

  it.each(['demo-user-1', '😀', 'a\uD83D\uDE00b', 'é', '\u0001\u001f', ' '])(
    'accepts %j',
    (text) => {
      expect(isStorableString(text)).toBe(true)
      expect(identifier.safeParse(text).success).toBe(true)
    },
  )

  it('agrees with String.prototype.isWellFormed on surrogates, for any string', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (text) => {
        // ES2024's String.prototype.isWellFormed (Node 20+), typed here for the ES2023 lib.
        const wellFormed = (text as string & { isWellFormed(): boolean }).isWellFormed()
        expect(isStorableString(text)).toBe(wellFormed && !text.includes('\u0000'))
      }),
      { numRuns: 2000 },
    )
  })
})

describe('storable timestamps', () => {
  it.each([
    '0000-01-01T00:00:00Z',
    '1969-12-31T23:59:59.999Z',
    '1970-01-01T00:30:00+01:00',
    '2023-02-29T00:00:00Z',
    '2024-01-01T23:59:60Z',
    '2024-01-01T00:00:00',
    'yesterday',
  ])('refuses %s', (value) => {
    expect(storableTimestamp.safeParse(value).success).toBe(false)
  })

  it.each([
    ['1970-01-01T00:00:00Z', '1970-01-01T00:00:00.000Z'],
    ['1970-01-01T01:00:00+01:00', '1970-01-01T00:00:00.000Z'],
    ['2024-02-29T12:00:00.123456-05:30', '2024-02-29T17:30:00.123Z'],
  ])('accepts %s as %s', (value, normalised) => {
    expect(storableTimestamp.safeParse(value).success).toBe(true)
    expect(normaliseTimestamp(value)).toBe(normalised)
  })

  it('bounds the future by the clock it is given', () => {
    const now = Date.parse('2026-01-01T00:00:00Z')
    expect(futureTimestampProblem('2026-01-01T00:05:00Z', now)).toBeUndefined()
    expect(futureTimestampProblem('2026-01-01T00:05:00.001Z', now)).toMatch(/future/)
    expect(futureTimestampProblem('9999-12-31T23:59:59-23:59', now)).toMatch(/future/)
  })
})

describe('storable JSON objects', () => {
  const schema = z.strictObject({ data: storableJsonObject(4096) })
  const paths = (value: unknown) => {
    const result = schema.safeParse({ data: value })
    return result.success ? [] : result.error.issues.map((i) => i.path.join('.'))
  }

  it('keeps __proto__ and constructor keys, and the object itself', () => {
    const data = JSON.parse('{"__proto__":{"x":1},"constructor":{"prototype":2},"a":1}')
    const result = schema.safeParse({ data })
    expect(result.success).toBe(true)
    expect(result.data?.data).toBe(data)
    expect(JSON.stringify(result.data?.data)).toBe(
      '{"__proto__":{"x":1},"constructor":{"prototype":2},"a":1}',
    )
  })

  it('names the path of every unstorable string, key or number', () => {
    const data = JSON.parse(
      '{"note":"a\\u0000b","list":[1,"\\udfff"],"k\\u0000":1,"deep":{"n":1e400},"ok":"fine"}',
    )
    expect(paths(data).sort()).toEqual(
      ['data.deep.n', 'data.k\u0000', 'data.list.1', 'data.note'].sort(),
    )
  })

  it('refuses non-objects, over-deep nesting and over-large values', () => {
    expect(paths([1])).toEqual(['data'])
    expect(paths('x')).toEqual(['data'])
    expect(paths(null)).toEqual(['data'])
    let deep: unknown = 1
    for (let i = 0; i < MAX_JSON_DEPTH; i++) deep = [deep]
    expect(paths({ a: deep })).toHaveLength(1)
    let ok: unknown = 1
    for (let i = 0; i < MAX_JSON_DEPTH - 1; i++) ok = [ok]
    expect(paths({ a: ok })).toEqual([])
    expect(paths({ big: 'x'.repeat(5000) })).toEqual(['data'])
  })

  it('finds no issue in any JSON of storable strings and finite numbers', () => {
    const storable = fc.string({ unit: 'grapheme' }).filter((s) => !s.includes('\u0000'))
    fc.assert(
      fc.property(
        fc.dictionary(storable, fc.jsonValue({ maxDepth: 5, stringUnit: 'grapheme' })),
        (value) => {
          const clean = JSON.parse(JSON.stringify(value))
          const hasNul = JSON.stringify(clean).includes('\\u0000')
          expect(jsonIssues(clean).length === 0).toBe(!hasNul)
        },
      ),
      { numRuns: 500 },
    )
  })
})
