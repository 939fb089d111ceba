// Storable input, end to end (CONTRACT.md "Storable input"): generated progress updates —
// biased toward NUL, unpaired surrogates, astral characters, array-literal hazards, odd keys
// (__proto__, constructor), deep nesting, huge and odd numbers, odd timestamps and offsets —
// are sent through the real path. Either the schema refuses the request with a 400 naming
// exactly the offending paths, or every update round-trips: append → claim (real Redis Lua,
// through the Upstash stand-in) → write (real Postgres, through the Neon stand-in) → read back
// (the context read for task, status and progress; the event log for `data`, byte for byte,
// and `occurred_at` to the millisecond). Without Redis, the same through the direct commit.
//
// The oracle below is written independently of src/contract/storable.ts: code-unit scans,
// a calendar check and a UTC computation of its own.
import fc from 'fast-check'
import { describe, expect, test } from 'vitest'
import { sql } from '../../src/db/client.ts'
import { bearer, getToken } from '../support/agents.ts'
import { type Scenario, scenario } from '../support/scenario.ts'

const buffered = await scenario()
const direct = await scenario({ redis: false })

// --- generators --------------------------------------------------------------------------------

const LONE = ['\ud800', '\udbff', '\udc00', '\udfff', '\ud83d']
const HAZARDS = [
  '"',
  '\\',
  '{',
  '}',
  ',',
  ' ',
  "'",
  'NULL',
  '\n',
  '\t',
  '\u2028',
  '\ufeff',
  '%',
  '/',
]
const ASTRAL = ['😀', '𝄞', '\ud83d\ude00', '🇩🇪']

const piece = (hostile: boolean) =>
  fc.oneof(
    { weight: 6, arbitrary: fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 6 }) },
    { weight: 2, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 3 }) },
    { weight: 2, arbitrary: fc.constantFrom(...HAZARDS) },
    { weight: 2, arbitrary: fc.constantFrom(...ASTRAL) },
    { weight: hostile ? 3 : 0, arbitrary: fc.constant('\u0000') },
    { weight: hostile ? 3 : 0, arbitrary: fc.constantFrom(...LONE) },
  )

/**
 * A string that is storable (hostile: false; astral characters and array-literal hazards
 * included) or biased toward what stores refuse, and sometimes longer than any bound.
 */
const oddString = (maxPieces: number, hostile = true): fc.Arbitrary<string> => {
  const joined = fc
    .array(piece(hostile), { minLength: 1, maxLength: maxPieces })
    .map((p) => p.join(''))
  return hostile
    ? fc.oneof(
        { weight: 8, arbitrary: joined },
        { weight: 1, arbitrary: fc.integer({ min: 120, max: 140 }).map((n) => 'x'.repeat(n)) },
      )
    : joined.filter((text) => !unstorable(text) && text.length <= 120)
}

const KEYS = [
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  'a',
  'a',
  '',
  // Integer-like keys: a JavaScript object lists them first, in numeric order.
  '1',
  '2',
  '10',
]

/**
 * JSON written by hand, as a tree the oracle reads (so duplicate keys, number spellings and
 * whitespace are known to it without a parser): numbers keep their spelling, keys may repeat,
 * and whitespace is put wherever JSON allows it.
 */
type Tree =
  | { t: 'str'; v: string }
  | { t: 'num' | 'lit'; v: string }
  | { t: 'arr'; items: { v: Tree; ws: string }[] }
  | { t: 'obj'; entries: { k: string; v: Tree; ws: [string, string, string] }[] }

function render(node: Tree): string {
  switch (node.t) {
    case 'str':
      return JSON.stringify(node.v)
    case 'num':
    case 'lit':
      return node.v
    case 'arr':
      return `[${node.items.map((i) => `${i.ws}${render(i.v)}`).join(',')}]`
    case 'obj':
      return `{${node.entries.map((e) => `${e.ws[0]}${JSON.stringify(e.k)}${e.ws[1]}:${e.ws[2]}${render(e.v)}`).join(',')}}`
  }
}
function treeDepth(node: Tree): number {
  if (node.t === 'arr') return 1 + Math.max(0, ...node.items.map((i) => treeDepth(i.v)))
  if (node.t === 'obj') return 1 + Math.max(0, ...node.entries.map((e) => treeDepth(e.v)))
  return 0
}
const FINITE_TOKENS = [
  '0',
  '-0',
  '1.0',
  '1e2',
  '0.10',
  '1.5',
  '1E+2',
  '1e-400',
  '9007199254740993',
  '12345678901234567890',
  '123456789012345678901234567890',
  '5e-324',
  '1.7976931348623157e308',
  '-12.5e-3',
]
const space = fc.constantFrom('', '', '', ' ', '\n', '\t', '\r\n  ')
const jsonValue = (hostile: boolean) => {
  const leaf: fc.Arbitrary<Tree> = fc.oneof(
    oddString(4, hostile).map((v): Tree => ({ t: 'str', v })),
    fc
      .constantFrom(...FINITE_TOKENS, ...(hostile ? ['1e400', '-1e400'] : []))
      .map((v): Tree => ({ t: 'num', v })),
    fc
      .double({ noNaN: true, noDefaultInfinity: true })
      .map((n): Tree => ({ t: 'num', v: JSON.stringify(n) })),
    fc.constantFrom('true', 'false', 'null').map((v): Tree => ({ t: 'lit', v })),
  )
  const key = fc.oneof(
    { weight: 2, arbitrary: fc.constantFrom(...KEYS) },
    { weight: 3, arbitrary: oddString(3, hostile) },
  )
  const entry = (value: fc.Arbitrary<Tree>) =>
    fc.record({ k: key, v: value, ws: fc.tuple(space, space, space) })
  const { node } = fc.letrec<{ node: Tree }>((tie) => ({
    node: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      leaf,
      fc
        .array(fc.record({ v: tie('node'), ws: space }), { maxLength: 3 })
        .map((items): Tree => ({ t: 'arr', items })),
      fc
        .array(entry(tie('node')), { maxLength: 4 })
        .map((entries): Tree => ({ t: 'obj', entries })),
    ),
  }))
  return fc.array(entry(node), { maxLength: 5 }).map((entries): Tree => ({ t: 'obj', entries }))
}
const chain = (v: Tree, k = 'd'): Tree => ({ t: 'obj', entries: [{ k, v, ws: ['', '', ''] }] })
/** A chain of objects and arrays around the 32-level bound. */
const deep = fc.tuple(fc.integer({ min: 28, max: 36 }), fc.boolean()).map(([levels, arrays]) => {
  let node: Tree = { t: 'str', v: 'bottom' }
  for (let i = 1; i < levels; i++) {
    node = arrays && i % 2 ? { t: 'arr', items: [{ v: node, ws: '' }] } : chain(node)
  }
  return chain(node, 'top')
})
const big = fc
  .integer({ min: 3500, max: 4300 })
  .map((n) => chain({ t: 'str', v: 'y'.repeat(n) }, 'pad'))
const cleanData = fc
  .oneof({ weight: 8, arbitrary: jsonValue(false) }, { weight: 1, arbitrary: deep })
  .filter((tree) => render(tree).length < 3500 && treeDepth(tree) <= 32)
const hostileData = fc.oneof(
  { weight: 6, arbitrary: jsonValue(true) },
  { weight: 1, arbitrary: deep },
  { weight: 1, arbitrary: big },
)

interface Stamp {
  text: string
  /** The instant, computed here (NaN when the calendar date does not exist). */
  ms: number
}
const pad = (n: number, width = 2) => String(Math.abs(n)).padStart(width, '0')
function daysIn(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28
  return [4, 6, 9, 11].includes(month) ? 30 : 31
}
function stamp(parts: {
  year: number
  month: number
  day: number
  hour: number
  minute: number
  second: number
  fraction: string
  offset: number | null
}): Stamp {
  const { year, month, day, hour, minute, second, fraction, offset } = parts
  const zone =
    offset === null
      ? 'Z'
      : `${offset < 0 ? '-' : '+'}${pad(Math.trunc(offset / 60))}:${pad(offset % 60)}`
  const text = `${pad(year, 4)}-${pad(month)}-${pad(day)}T${pad(hour)}:${pad(minute)}:${pad(second)}${fraction ? `.${fraction}` : ''}${zone}`
  if (day > daysIn(year, month)) return { text, ms: Number.NaN }
  const d = new Date(0)
  d.setUTCFullYear(year, month - 1, day)
  d.setUTCHours(hour, minute, second, Number(fraction.slice(0, 3).padEnd(3, '0')))
  return { text, ms: d.getTime() - (offset ?? 0) * 60_000 }
}
const offsetMinutes = fc.oneof(
  fc.constant(null),
  fc.constantFrom(0, 60, -60, 14 * 60, -(23 * 60 + 59), 23 * 60 + 59, 330),
)
const calendar = fc.record({
  year: fc.oneof(
    fc.constantFrom(0, 1, 99, 1969, 1970, 1971, 2000, 2024, 9999),
    fc.integer({ min: 1900, max: 2100 }),
  ),
  month: fc.integer({ min: 1, max: 12 }),
  day: fc.integer({ min: 1, max: 31 }),
  hour: fc.integer({ min: 0, max: 23 }),
  minute: fc.integer({ min: 0, max: 59 }),
  second: fc.integer({ min: 0, max: 59 }),
  fraction: fc.oneof(fc.constant(''), fc.stringMatching(/^\d{1,9}$/)),
  offset: offsetMinutes,
})
/** Around the epoch, around now (clear of the +5 min bound by 5 s), or anywhere. */
const near = (center: () => number, spreadMs: number) =>
  fc
    .tuple(fc.integer({ min: -spreadMs, max: spreadMs }), offsetMinutes)
    .filter(([delta]) => Math.abs(delta - 5 * 60_000) > 5000)
    .map(([delta, offset]) => {
      const at = new Date(center() + delta + (offset ?? 0) * 60_000)
      return stamp({
        year: at.getUTCFullYear(),
        month: at.getUTCMonth() + 1,
        day: at.getUTCDate(),
        hour: at.getUTCHours(),
        minute: at.getUTCMinutes(),
        second: at.getUTCSeconds(),
        fraction: pad(at.getUTCMilliseconds(), 3),
        offset,
      })
    })
const hostileTimestamp = fc.oneof(
  calendar.map(stamp),
  near(() => 0, 2 * 60 * 60_000),
  near(() => Date.now(), 20 * 60_000),
)
const cleanTimestamp = fc.oneof(
  calendar.map(stamp).filter((t) => t.ms >= 0 && t.ms < Date.UTC(2025, 0, 1)),
  near(() => Date.now() - 10 * 60_000, 10 * 60_000),
)

interface Update {
  user: string
  task: string
  status: string
  progress: number
  at: Stamp
  key?: string
  data?: Tree
}
const STATUSES = ['not_started', 'in_progress', 'completed', 'failed', 'skipped']
const FIELDS = ['task', 'key', 'data', 'at'] as const
/** Mostly clean updates; some with one field drawn from the hostile generators. */
const oneUpdate = fc
  .tuple(
    fc.record(
      {
        task: oddString(8, false),
        status: fc.constantFrom(...STATUSES),
        progress: fc.integer({ min: 0, max: 100 }),
        at: cleanTimestamp,
        key: oddString(6, false),
        data: cleanData,
      },
      { requiredKeys: ['task', 'status', 'progress', 'at'] },
    ),
    fc.option(fc.constantFrom(...FIELDS), { freq: 2, nil: undefined }),
    oddString(8),
    oddString(6),
    hostileData,
    hostileTimestamp,
  )
  .map(([clean, poisoned, task, key, data, at]) => {
    if (poisoned === undefined) return clean
    return { ...clean, ...{ task: { task }, key: { key }, data: { data }, at: { at } }[poisoned] }
  })
const updates = fc.tuple(
  fc.oneof(
    { weight: 4, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: oddString(4) },
  ),
  fc.array(oneUpdate, { minLength: 1, maxLength: 3 }),
)

// --- the oracle --------------------------------------------------------------------------------

function unstorable(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 0) return true
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = text.charCodeAt(i + 1)
      if (next >= 0xdc00 && next <= 0xdfff) i++
      else return true
    } else if (c >= 0xdc00 && c <= 0xdfff) return true
  }
  return false
}
const badId = (text: string, max = 128) => text.length < 1 || text.length > max || unstorable(text)

/**
 * Paths (below `data`) a store would refuse, one per branch, as the contract lists them: every
 * member counts, a duplicate key's shadowed value too (the text is stored whole).
 */
function dataIssues(node: Tree, path: string[], depth: number, out: string[]): void {
  if (node.t === 'str') {
    if (unstorable(node.v)) out.push(path.join('.'))
  } else if (node.t === 'num') {
    if (!Number.isFinite(Number(node.v))) out.push(path.join('.'))
  } else if (node.t === 'arr' || node.t === 'obj') {
    if (depth > 32) {
      out.push(path.join('.'))
      return
    }
    if (node.t === 'arr') {
      node.items.forEach((i, n) => {
        dataIssues(i.v, [...path, String(n)], depth + 1, out)
      })
      return
    }
    for (const e of node.entries) {
      if (unstorable(e.k)) out.push([...path, e.k].join('.'))
      else dataIssues(e.v, [...path, e.k], depth + 1, out)
    }
  }
}

function expectedPaths(
  u: Update,
  prefix: string,
  now: number,
): { schema: string[]; future: string[] } {
  const schema: string[] = []
  if (badId(u.user)) schema.push(`${prefix}user_id`)
  if (badId(u.task)) schema.push(`${prefix}task_id`)
  if (u.key !== undefined && badId(u.key)) schema.push(`${prefix}idempotency_key`)
  if (!(u.at.ms >= 0)) schema.push(`${prefix}occurred_at`)
  if (u.data !== undefined) {
    const issues: string[] = []
    dataIssues(u.data, ['data'], 1, issues)
    schema.push(...issues.map((p) => `${prefix}${p}`))
    // The bound is on the bytes as sent.
    if (new TextEncoder().encode(render(u.data)).byteLength > 4096) schema.push(`${prefix}data`)
  }
  const future = u.at.ms > now + 5 * 60_000 ? [`${prefix}occurred_at`] : []
  return { schema, future }
}

function bodyOf(list: Update[], batch: boolean): string {
  const one = (u: Update) =>
    `{"user_id":${JSON.stringify(u.user)},"task_id":${JSON.stringify(u.task)},"status":"${u.status}","progress":${u.progress},"occurred_at":${JSON.stringify(u.at.text)}${u.key === undefined ? '' : `,"idempotency_key":${JSON.stringify(u.key)}`}${u.data === undefined ? '' : `,"data" : ${render(u.data)}\n`}}`
  return batch ? `{"updates":[${list.map(one).join(',')}]}` : one(list[0]!)
}

// --- the property ------------------------------------------------------------------------------

let run = 0
/** How the runs ended: the property must exercise the stores, not only the schema. */
const outcomes = { refused: 0, stored: 0, storedWithData: 0 }

async function roundTrip(
  s: Scenario,
  auth: Record<string, string>,
  input: [string | undefined, Omit<Update, 'user'>[]],
) {
  const [userPart, raw] = input
  run++
  // A user of its own per run (so state and events are this run's), granted to the agent.
  const user = `${userPart ?? 'user'}~${s.runtime}-${run}-${crypto.randomUUID().slice(0, 6)}`
  const list: Update[] = raw.map((u, i) => ({
    ...u,
    user,
    // Keys of their own per run: a key is only ever re-used on purpose.
    ...(u.key === undefined ? {} : { key: `${u.key}#${run}.${i}` }),
  }))
  // Distinct tasks per request: equal occurred_at on one task would make "latest" a coin toss.
  const seen = new Set<string>()
  const unique = list.filter((u) => !seen.has(u.task) && seen.add(u.task))
  const batch = unique.length > 1 || run % 2 === 0
  const prefix = (i: number) => (batch ? `updates.${i}.` : '')
  const now = Date.now()
  const expected = unique.map((u, i) => expectedPaths(u, prefix(i), now))
  const schemaPaths = expected.flatMap((e) => e.schema)
  const futurePaths = expected.flatMap((e) => e.future)
  if (!badId(user)) {
    const db = s.db()
    await db.query(sql`INSERT INTO users (id, display_name) VALUES (${user}, 'generated')`)
    await db.query(
      sql`INSERT INTO agent_user_grants (agent_id, user_id) VALUES ('demo-agent', ${user})`,
    )
  }

  const res = await s.fetch('/api/v1/agent/progress', {
    method: 'POST',
    headers: { ...auth, 'Content-Type': 'application/json' },
    body: bodyOf(unique, batch),
  })
  const answer = (await res.json()) as Record<string, unknown>
  const refused = schemaPaths.length ? schemaPaths : futurePaths
  if (refused.length) {
    expect(res.status, JSON.stringify(answer)).toBe(400)
    const got = (answer.errors as { path: string }[]).map((e) => e.path)
    expect(new Set(got)).toEqual(new Set(refused))
    outcomes.refused++
    return
  }
  expect(res.status, JSON.stringify(answer)).toBe(202)
  expect(answer).toMatchObject({ accepted: unique.length, duplicates: 0 })
  if (s.hasRedis) {
    await s.settle()
    const flushed = await s.fetch('/api/v1/internal/flush', {
      method: 'POST',
      headers: { Authorization: `Bearer ${s.env.CRON_SECRET}` },
    })
    expect(await flushed.json()).toMatchObject({ remaining: 0, dead_letters: 0 })
  }
  await s.settle()

  // The context read: every task, its status and progress, as sent.
  const context = await s.fetch(`/api/v1/agent/users/${encodeURIComponent(user)}/context`, {
    headers: { ...auth, 'Cache-Control': 'no-cache' },
  })
  expect(context.status).toBe(200)
  const tasks = (
    (await context.json()) as { progress: { task_id: string; status: string; progress: number }[] }
  ).progress
  expect(new Set(tasks.map((t) => JSON.stringify([t.task_id, t.status, t.progress])))).toEqual(
    new Set(unique.map((u) => JSON.stringify([u.task, u.status, u.progress]))),
  )
  // The event log and current state: data byte for byte as sent (big integers, 1.0, -0, 1e2,
  // duplicate keys, integer-like keys in their order, whitespace); the instant.
  const rows = await s.db().query<{ task_id: string; key: string; data: string | null; at: Date }>(
    sql`SELECT task_id, idempotency_key AS key, data::text AS data, occurred_at AS at
        FROM progress_events WHERE user_id = ${user}`,
  )
  expect(rows).toHaveLength(unique.length)
  for (const u of unique) {
    const row = rows.find((r) => r.task_id === u.task)
    expect(row, JSON.stringify(u.task)).toBeDefined()
    expect(row!.data).toBe(u.data === undefined ? null : render(u.data))
    expect(new Date(row!.at).getTime()).toBe(u.at.ms)
    if (u.key !== undefined) expect(row!.key).toBe(u.key)
  }
  const state = await s
    .db()
    .query<{ task_id: string; data: string | null }>(
      sql`SELECT task_id, data::text AS data FROM progress_state WHERE user_id = ${user}`,
    )
  for (const u of unique) {
    const row = state.find((r) => r.task_id === u.task)
    expect(row?.data, JSON.stringify(u.task)).toBe(u.data === undefined ? null : render(u.data))
  }
  outcomes.stored++
  if (unique.some((u) => u.data !== undefined)) outcomes.storedWithData++
}

describe('storable input through the real stores', () => {
  test.each([
    ['append → claim (Redis Lua) → write (Postgres) → read', buffered],
    ['direct commit (Postgres) → read', direct],
  ])(
    '%s: refused with the paths named, or stored exactly',
    async (_path, s) => {
      const auth = bearer((await getToken(s)).access_token)
      const before = { ...outcomes }
      const numRuns = Number(process.env.STORABLE_RUNS ?? 80)
      await fc.assert(
        fc.asyncProperty(updates, (input) => roundTrip(s, auth, input)),
        { numRuns },
      )
      const stored = outcomes.stored - before.stored
      const summary = `${numRuns} runs: ${stored} stored (${outcomes.storedWithData - before.storedWithData} with data), ${outcomes.refused - before.refused} refused`
      process.stdout.write(`[storable, ${s.hasRedis ? 'buffered' : 'direct'}] ${summary}\n`)
      // Not vacuous: a fair share of the generated requests reached the stores.
      expect(stored, summary).toBeGreaterThanOrEqual(numRuns / 5)
    },
    240_000,
  )

  test('what JSON.stringify would change is stored as sent, in either store', async () => {
    const cases = [
      '{"n":12345678901234567890,"m":9007199254740993}',
      '{"a":1,"a":2}',
      '{"b":1,"2":2,"1":3}',
      '{"x":1.0,"y":-0,"z":1e2,"w":0.10,"v":1E+2}',
      '{"__proto__":{"x":1},"a":1,"constructor":{"y":2}}',
      '{"s":"\\u00e9\\/\\ud83d\\ude00","t":"a\u2028b"}',
      '{ "spaced" :\n\t[ 1 , { } ] }',
      '{"":1}',
    ]
    for (const s of [buffered, direct]) {
      const auth = bearer((await getToken(s)).access_token)
      const tasks: string[] = []
      for (const data of cases) {
        const task = `as-sent-${crypto.randomUUID()}`
        tasks.push(task)
        const res = await s.fetch('/api/v1/agent/progress', {
          method: 'POST',
          headers: { ...auth, 'Content-Type': 'application/json' },
          body: `{"user_id":"demo-user-1","task_id":"${task}","status":"in_progress","progress":1,"occurred_at":"${new Date(Date.now() - 1000).toISOString()}","data":${data}}`,
        })
        expect(res.status, data).toBe(202)
      }
      await s.settle()
      if (s.hasRedis) {
        await s.fetch('/api/v1/internal/flush', {
          method: 'POST',
          headers: { Authorization: `Bearer ${s.env.CRON_SECRET}` },
        })
      }
      for (const [i, task] of tasks.entries()) {
        for (const table of ['progress_events', 'progress_state']) {
          const rows = await s.db().query<{ data: string }>({
            text: `SELECT data::text AS data FROM ${table} WHERE task_id = $1`,
            params: [task],
          })
          expect(
            rows.map((r) => r.data),
            `${table}: ${cases[i]}`,
          ).toEqual([cases[i]])
        }
      }
    }
  })

  test('the same request twice: the second is all duplicates, in either store', async () => {
    for (const s of [buffered, direct]) {
      const auth = bearer((await getToken(s)).access_token)
      // Odd keys and spellings the fingerprint must read the same way both times.
      const body = `{"user_id":"demo-user-1","task_id":"twice-😀-${crypto.randomUUID()}","status":"completed","progress":100,"occurred_at":"${new Date(Date.now() - 1000).toISOString().replace('Z', '+00:00')}","data":{"__proto__":1,"k \\"quoted\\"":["\\\\","{x,y}"],"n":1E+2}}`
      const send = () =>
        s.fetch('/api/v1/agent/progress', {
          method: 'POST',
          headers: { ...auth, 'Content-Type': 'application/json' },
          body,
        })
      expect((await send()).status).toBe(202)
      expect(await (await send()).json()).toMatchObject({ accepted: 0, duplicates: 1 })
      await s.settle()
    }
  })
})
