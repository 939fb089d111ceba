// The source text of JSON values, so that `data` is stored exactly as the agent sent it
// (CONTRACT.md "Storable input"). JSON.parse + JSON.stringify would lose what a JavaScript value
// cannot hold: big integers (9007199254740993), duplicate keys, number spellings (1.0, -0, 1e2),
// the order of integer-like keys, whitespace.
//
// Why by hand: no parser does this at the edge for us. JSON.parse's reviver gives the source of
// primitives only (TC39 "JSON.parse source text access"), never of an object or an array.
// Libraries that report offsets (jsonc-parser, json-source-map) parse a superset of JSON
// (comments, trailing commas) into a full tree of their own, which would then have to agree
// with JSON.parse on every corner (duplicate keys, `__proto__`) — more code in the worker, to
// answer less. What is needed is narrow: the body has already been parsed by JSON.parse, so the
// text is valid JSON, and only the spans of a few members at known paths are wanted. A scanner
// over valid JSON needs only to skip strings (minding escapes) and to match brackets.
//
// The span travels with the parsed value (a non-enumerable symbol property: invisible to
// JSON.stringify, Object.keys and zod), so validation can hold the bytes themselves to the
// storable rules and the size bound, and the stores can keep them. A value without a span (one
// parsed elsewhere, e.g. MCP tool arguments the MCP SDK parsed, issue 14) is serialised with
// JSON.stringify: `jsonText` is that seam.

/** Where a value's source text is kept on the value. */
const SOURCE: unique symbol = Symbol('json source')

type Sourced = { [SOURCE]?: string }

/** The source text a value was parsed from, if `attachSources` kept it. */
export function sourceOf(value: unknown): string | undefined {
  return typeof value === 'object' && value !== null ? (value as Sourced)[SOURCE] : undefined
}

/**
 * The JSON text to store for `value`: the exact text it was parsed from when that was kept,
 * else JSON.stringify's (the seam for values that arrive parsed, e.g. through MCP).
 */
export function jsonText(value: unknown): string {
  return sourceOf(value) ?? JSON.stringify(value)
}

const QUOTE = 0x22
const BACKSLASH = 0x5c

function isSpace(code: number): boolean {
  return code === 0x20 || code === 0x0a || code === 0x0d || code === 0x09
}

function skipSpace(text: string, i: number): number {
  while (i < text.length && isSpace(text.charCodeAt(i))) i++
  return i
}

/** The index just past the string token that starts at `i` (a '"'). */
function endOfString(text: string, i: number): number {
  for (i++; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (code === BACKSLASH) i++
    else if (code === QUOTE) return i + 1
  }
  return text.length
}

/** The index just past the value that starts at `i` (no leading whitespace). */
function endOfValue(text: string, i: number): number {
  const first = text[i]
  if (first === '"') return endOfString(text, i)
  if (first === '{' || first === '[') {
    let depth = 0
    for (; i < text.length; i++) {
      const ch = text[i]
      if (ch === '"') i = endOfString(text, i) - 1
      else if (ch === '{' || ch === '[') depth++
      else if (ch === '}' || ch === ']') {
        depth--
        if (depth === 0) return i + 1
      }
    }
    return text.length
  }
  // A number or a literal: up to the next delimiter.
  while (i < text.length) {
    const ch = text[i]!
    if (ch === ',' || ch === '}' || ch === ']' || isSpace(text.charCodeAt(i))) break
    i++
  }
  return i
}

interface Span {
  start: number
  end: number
}

interface Member extends Span {
  /** The key as JSON.parse reads it (escapes decoded). */
  key: string
}

/** The members of the object at `start` (a '{'), in order, duplicates included. */
function members(text: string, start: number): Member[] {
  const out: Member[] = []
  let i = skipSpace(text, start + 1)
  if (text[i] === '}') return out
  while (i < text.length) {
    const keyEnd = endOfString(text, i)
    const key = JSON.parse(text.slice(i, keyEnd)) as string
    i = skipSpace(text, keyEnd) + 1 // past ':'
    const valueStart = skipSpace(text, i)
    const valueEnd = endOfValue(text, valueStart)
    out.push({ key, start: valueStart, end: valueEnd })
    i = skipSpace(text, valueEnd)
    if (text[i] !== ',') break
    i = skipSpace(text, i + 1)
  }
  return out
}

/** The elements of the array at `start` (a '['), in order. */
function elements(text: string, start: number): Span[] {
  const out: Span[] = []
  let i = skipSpace(text, start + 1)
  if (text[i] === ']') return out
  while (i < text.length) {
    const end = endOfValue(text, i)
    out.push({ start: i, end })
    i = skipSpace(text, end)
    if (text[i] !== ',') break
    i = skipSpace(text, i + 1)
  }
  return out
}

/**
 * The source spans of the values `pattern` names in the JSON text `text` (valid JSON: it was
 * parsed by JSON.parse). A pattern is dot-separated: a member name, or `*` for every element of
 * an array (`updates.*.data`). A member named twice is read as JSON.parse reads it: the last
 * one. Answers each match's concrete path and span; a path that does not exist matches nothing.
 */
export function locate(
  text: string,
  pattern: string,
): { path: (string | number)[]; start: number; end: number }[] {
  let found: { path: (string | number)[]; start: number; end: number }[] = []
  const root = skipSpace(text, 0)
  found.push({ path: [], start: root, end: endOfValue(text, root) })
  for (const step of pattern.split('.')) {
    const next: typeof found = []
    for (const at of found) {
      const open = text[at.start]
      if (step === '*') {
        if (open !== '[') continue
        elements(text, at.start).forEach((e, i) => {
          next.push({ path: [...at.path, i], ...e })
        })
      } else if (open === '{') {
        const member = members(text, at.start).findLast((m) => m.key === step)
        if (member) next.push({ path: [...at.path, step], start: member.start, end: member.end })
      }
    }
    found = next
  }
  return found
}

/**
 * Keeps, on each object or array value of `parsed` (the result of JSON.parse(text)) that one of
 * `patterns` names, the text it was parsed from (see `sourceOf`). Values of other kinds are
 * left alone (a schema refuses them anyway).
 */
export function attachSources(text: string, parsed: unknown, patterns: readonly string[]): void {
  for (const pattern of patterns) {
    for (const { path, start, end } of locate(text, pattern)) {
      let value: unknown = parsed
      for (const step of path) {
        value =
          typeof value === 'object' && value !== null
            ? (value as Record<string | number, unknown>)[step]
            : undefined
      }
      if (typeof value === 'object' && value !== null && !Object.hasOwn(value, SOURCE)) {
        Object.defineProperty(value, SOURCE, { value: text.slice(start, end), enumerable: false })
      }
    }
  }
}

export interface SourceIssue {
  /** Path below the value (object keys and array indexes). */
  path: (string | number)[]
  message: string
}

/**
 * Every reason the stores would refuse the JSON text `text` (one valid JSON value) as it is
 * stored — every member counted, a duplicate key's shadowed value included, since the text is
 * kept whole: a string (key or value) with U+0000 or an unpaired surrogate (`reasonOf` says
 * why), a number JSON.parse reads as infinite, nesting deeper than `maxDepth` (the value itself
 * is depth 1). Stops at the first issue of each branch, as the parsed-value check does.
 */
export function sourceIssues(
  text: string,
  maxDepth: number,
  reasonOf: (text: string) => string | undefined,
): SourceIssue[] {
  const issues: SourceIssue[] = []
  const walk = (start: number, path: (string | number)[], depth: number): void => {
    const first = text[start]
    if (first === '"') {
      const reason = reasonOf(JSON.parse(text.slice(start, endOfString(text, start))) as string)
      if (reason) issues.push({ path, message: reason })
      return
    }
    if (first === '{' || first === '[') {
      if (depth > maxDepth) {
        issues.push({ path, message: `Must not nest deeper than ${maxDepth} levels` })
        return
      }
      if (first === '[') {
        elements(text, start).forEach((e, i) => {
          walk(e.start, [...path, i], depth + 1)
        })
        return
      }
      for (const m of members(text, start)) {
        const reason = reasonOf(m.key)
        if (reason) issues.push({ path: [...path, m.key], message: `Key: ${reason}` })
        else walk(m.start, [...path, m.key], depth + 1)
      }
      return
    }
    if (first === '-' || (first !== undefined && first >= '0' && first <= '9')) {
      if (!Number.isFinite(Number(text.slice(start, endOfValue(text, start))))) {
        issues.push({ path, message: 'Must be a finite number' })
      }
    }
  }
  walk(skipSpace(text, 0), [], 1)
  return issues
}

/**
 * Canonical JSON of the JSON text `text` (one valid JSON value, nested no deeper than the
 * schemas allow), for content hashes of what is stored as sent: whitespace dropped; members
 * sorted by key at every depth, a key named twice kept twice in its order (the text keeps
 * both); strings re-encoded by JSON.stringify; a number as JSON.stringify writes the double
 * JSON.parse reads — unless that double is not the number written (an integer past 2^53,
 * more digits than a double holds), which keeps its exact decimal as `<digits>e<exponent>`.
 * For text without such numbers or repeated keys this is the canonical JSON of the parsed
 * value, so hashes made either way agree.
 */
export function canonicalSource(text: string): string {
  const canonical = (start: number, end: number): string => {
    const first = text[start]
    if (first === '{') {
      const sorted = members(text, start)
        .map((member, order) => ({ member, order }))
        .sort((a, b) =>
          a.member.key < b.member.key ? -1 : a.member.key > b.member.key ? 1 : a.order - b.order,
        )
      const parts = sorted.map(
        ({ member }) => `${JSON.stringify(member.key)}:${canonical(member.start, member.end)}`,
      )
      return `{${parts.join(',')}}`
    }
    if (first === '[') {
      return `[${elements(text, start)
        .map((e) => canonical(e.start, e.end))
        .join(',')}]`
    }
    const token = text.slice(start, end)
    // Without escapes or surrogates a string is written back as it came (the common case).
    if (first === '"') return PLAIN_STRING.test(token) ? token : JSON.stringify(JSON.parse(token))
    if (token === 'true' || token === 'false' || token === 'null') return token
    return canonicalNumber(token)
  }
  const start = skipSpace(text, 0)
  return canonical(start, endOfValue(text, start))
}

/** A string token JSON.stringify would write back unchanged: no escape, no surrogate. */
const PLAIN_STRING = /^"[^\\\ud800-\udfff]*"$/

/** An integer a double holds exactly, written as JSON.stringify writes it. */
const PLAIN_INTEGER = /^-?(?:0|[1-9]\d{0,14})$/

/** A JSON number lexeme as JSON.stringify writes its double, or exactly if that loses it. */
function canonicalNumber(lexeme: string): string {
  if (PLAIN_INTEGER.test(lexeme) && lexeme !== '-0') return lexeme
  const written = JSON.stringify(Number(lexeme))
  const exact = decimalOf(lexeme)
  const read = decimalOf(written)
  if (
    exact.digits === read.digits &&
    exact.exponent === read.exponent &&
    exact.sign === read.sign
  ) {
    return written
  }
  return `${exact.sign}${exact.digits}e${exact.exponent}`
}

/**
 * A JSON number lexeme's exact value: sign, significant digits, power of ten (zero: "0"). The
 * power in BigInt: a lexeme may carry an exponent of any length (1e-100000000000000000000 is
 * a finite 0 to JSON.parse), and two such must not compare equal by rounding.
 */
function decimalOf(lexeme: string): { sign: string; digits: string; exponent: bigint } {
  const match = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(lexeme)
  if (!match) return { sign: '', digits: lexeme, exponent: 0n }
  const [, sign = '', int = '', frac = '', exp = '0'] = match
  const all = int + frac
  // Zeros stripped by index: a pattern anchored at the end only rescans long runs of zeros.
  let first = 0
  while (first < all.length && all.charCodeAt(first) === ZERO) first++
  let end = all.length
  while (end > first && all.charCodeAt(end - 1) === ZERO) end--
  if (first === end) return { sign: '', digits: '0', exponent: 0n }
  const exponent = BigInt(exp) - BigInt(frac.length) + BigInt(all.length - end)
  return { sign, digits: all.slice(first, end), exponent }
}

const ZERO = 0x30
