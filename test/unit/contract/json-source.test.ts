// The source text of JSON members (src/contract/json-source.ts): found exactly as written, for
// any valid JSON, read the way JSON.parse reads it (the last of duplicate members), and held to
// the storable rules as a whole (attack F6).
import fc from 'fast-check'
import { describe, expect, test } from 'vitest'
import {
  attachSources,
  canonicalSource,
  jsonText,
  locate,
  sourceIssues,
  sourceOf,
} from '../../../src/contract/json-source.ts'
import { MAX_JSON_DEPTH, unstorableReason } from '../../../src/contract/storable.ts'
import { canonicalJson } from '../../../src/progress/idempotency.ts'

const spans = (text: string, pattern: string) =>
  locate(text, pattern).map(({ path, start, end }) => [path.join('.'), text.slice(start, end)])

describe('locate', () => {
  test('a member of one update, and of each update of a batch, exactly as written', () => {
    const one = '{"user_id":"u","data" : {"n":12345678901234567890, "x":1.0,"y":-0,"z":1e2}\n}'
    expect(spans(one, 'data')).toEqual([
      ['data', '{"n":12345678901234567890, "x":1.0,"y":-0,"z":1e2}'],
    ])
    const batch =
      ' {"updates":[ {"data":{"a":1,"a":2}} ,{"task_id":"t"},{"data":\t{"2":2,"1":3} }]} '
    expect(spans(batch, 'updates.*.data')).toEqual([
      ['updates.0.data', '{"a":1,"a":2}'],
      ['updates.2.data', '{"2":2,"1":3}'],
    ])
  })

  test('read as JSON.parse reads: the last duplicate, escaped keys, strings holding brackets', () => {
    const text =
      '{"data":{"old":true},"note":"}]\\"{[","d\\u0061ta":{"s":"a\\\\\\"}{","t":[1,{"u":"]"}]}}'
    expect(spans(text, 'data')).toEqual([['data', '{"s":"a\\\\\\"}{","t":[1,{"u":"]"}]}']])
    expect(JSON.parse(spans(text, 'data')[0]![1]!)).toEqual(JSON.parse(text).data)
  })

  test('a path that is not there matches nothing', () => {
    expect(locate('{"updates":{"data":{}}}', 'updates.*.data')).toEqual([])
    expect(locate('[{"data":{}}]', 'data')).toEqual([])
    expect(locate('{"x":1}', 'data')).toEqual([])
  })
})

/** JSON text with whitespace, spellings and duplicate keys of its own, and where it put `data`. */
const ws = fc.constantFrom('', ' ', '\n', '\t', '\r\n  ')
const token = fc.oneof(
  fc.constantFrom('0', '-0', '1.0', '1e2', '1E+2', '0.10', '9007199254740993', 'true', 'null'),
  fc.string({ unit: 'binary', maxLength: 6 }).map((s) => JSON.stringify(s)),
)
const key = fc.oneof(
  fc.constantFrom('a', 'a', '1', '2', '10', '__proto__', 'data', 'updates', ''),
  fc.string({ maxLength: 4 }),
)
const { value } = fc.letrec<{ value: string }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    token,
    fc
      .tuple(fc.array(fc.tuple(ws, tie('value'), ws), { maxLength: 3 }))
      .map(([items]) => `[${items.map(([a, v, b]) => a + v + b).join(',')}]`),
    fc
      .array(fc.tuple(ws, key, ws, ws, tie('value'), ws), { maxLength: 4 })
      .map(
        (m) =>
          `{${m.map(([a, k, b, c, v, d]) => `${a}${JSON.stringify(k)}${b}:${c}${v}${d}`).join(',')}}`,
      ),
  ),
}))

describe('locate, for any valid JSON', () => {
  test('property: the span is the text written for the member JSON.parse keeps', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(key, value), { maxLength: 5 }), ws, (entries, space) => {
        const text = `${space}{${entries.map(([k, v]) => `${space}${JSON.stringify(k)}${space}:${space}${v}${space}`).join(',')}}${space}`
        const parsed = JSON.parse(text) as Record<string, unknown>
        for (const [k] of entries) {
          if (k.includes('.') || k === '*') continue // not expressible as a pattern
          const last = entries.findLast(([other]) => other === k)![1]
          const found = locate(text, k)
          expect(found.map((f) => text.slice(f.start, f.end))).toEqual([last])
          expect(JSON.parse(last)).toEqual(parsed[k])
        }
      }),
      { numRuns: 3000 },
    )
  })
})

describe('attachSources and jsonText', () => {
  test('the parsed value carries its bytes, unseen by JSON.stringify, Object.keys and spread', () => {
    const text = '{"updates":[{"data":{"b":1,"2":2,"1":3, "n":1.0}},{"data":{"x":[ ]}}]}'
    const parsed = JSON.parse(text) as { updates: { data: object }[] }
    attachSources(text, parsed, ['data', 'updates.*.data'])
    expect(parsed.updates.map((u) => jsonText(u.data))).toEqual([
      '{"b":1,"2":2,"1":3, "n":1.0}',
      '{"x":[ ]}',
    ])
    expect(JSON.stringify(parsed.updates[0]!.data)).toBe('{"1":3,"2":2,"b":1,"n":1}')
    expect(Object.keys(parsed.updates[0]!.data)).toEqual(['1', '2', 'b', 'n'])
    expect(sourceOf({ ...parsed.updates[0]!.data })).toBeUndefined()
    // A value that arrived parsed (MCP): stored as JSON.stringify writes it.
    expect(jsonText({ b: 1, a: [1] })).toBe('{"b":1,"a":[1]}')
  })
})

describe('sourceIssues', () => {
  const issues = (text: string) =>
    sourceIssues(text, MAX_JSON_DEPTH, unstorableReason).map((i) => [i.path.join('.'), i.message])

  test('every member counts, a shadowed duplicate too: it is stored', () => {
    expect(issues('{"a":"\\u0000","a":"ok"}')).toEqual([['a', 'Must not contain U+0000 (NUL)']])
    expect(issues('{"k\\udfff":1,"n":[1e400]}')).toEqual([
      ['k\udfff', 'Key: Must not contain an unpaired UTF-16 surrogate'],
      ['n.0', 'Must be a finite number'],
    ])
    expect(issues('{"ok":"\\ud83d\\ude00","big":12345678901234567890,"neg":-0}')).toEqual([])
  })

  test('nesting counts the object itself as level 1', () => {
    const nest = (levels: number) => `${'{"d":'.repeat(levels - 1)}{}${'}'.repeat(levels - 1)}`
    expect(issues(nest(MAX_JSON_DEPTH))).toEqual([])
    expect(issues(nest(MAX_JSON_DEPTH + 1))).toHaveLength(1)
  })
})

describe('canonicalSource', () => {
  /** Text with the members of every object in a random order and random spacing. */
  const respelled = (value: unknown, rand: () => number): string => {
    const space = () => [' ', '', '\n', '\t'][Math.floor(rand() * 4)]!
    if (value === null || typeof value !== 'object') return `${space()}${JSON.stringify(value)}`
    if (Array.isArray(value)) return `[${value.map((v) => respelled(v, rand)).join(',')}]`
    const members = Object.entries(value).sort(() => rand() - 0.5)
    return `{${members.map(([k, v]) => `${JSON.stringify(k)}${space()}:${respelled(v, rand)}`).join(',')}}`
  }

  test('agrees with the parsed value’s canonical JSON whenever parsing loses nothing', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), fc.integer(), (value, seed) => {
        let state = seed
        const rand = () => {
          state = (state * 1103515245 + 12345) & 0x7fffffff
          return state / 0x7fffffff
        }
        const text = respelled(value, rand)
        expect(canonicalSource(text)).toBe(canonicalJson(JSON.parse(text)))
      }),
      { numRuns: 500 },
    )
  })

  test('numbers past a double, and repeated keys, are kept; other spellings are not', () => {
    const same = (a: string, b: string) => canonicalSource(a) === canonicalSource(b)
    expect(same('9007199254740993', '9007199254740992')).toBe(false)
    expect(same('12345678901234567890', '1.2345678901234567e19')).toBe(false)
    expect(same('12345678901234567890', '12345678901234567890.0')).toBe(true)
    expect(same('1.50', '1.5')).toBe(true)
    expect(same('1e2', '100')).toBe(true)
    expect(same('-0', '0')).toBe(true)
    expect(same('0.1', '1e-1')).toBe(true)
    expect(same('{"a":1,"a":2}', '{"a":2}')).toBe(false)
    expect(same('{"b":1,"a":[1, 2]}', '{ "a":[1,2],"b":1.0 }')).toBe(true)
    expect(same('"\\u00e9"', '"é"')).toBe(true)
    // Exponents of any length compare exactly (JSON.parse reads both as 0).
    expect(same('1e-100000000000000000000', '1e-100000000000000000001')).toBe(false)
    expect(same('1e-9007199254740993', '1e-9007199254740992')).toBe(false)
    expect(same('1e-100000000000000000000', '10e-100000000000000000001')).toBe(true)
    // A long run of zeros inside the digits is still those digits.
    expect(same(`0.1${'0'.repeat(4070)}1`, '0.1')).toBe(false)
    expect(same(`0.1${'0'.repeat(4070)}`, '0.1')).toBe(true)
  })
})
