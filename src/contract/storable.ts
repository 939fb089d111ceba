// Storable input (CONTRACT.md "Storable input"): the one definition of what every store this
// API writes to accepts, used by every schema of every route. Nothing accepted here may later
// be refused by Postgres (text refuses U+0000, jsonb refuses \u0000, timestamptz refuses year
// 0) or by Redis' Lua JSON decoder (cjson refuses unpaired surrogate escapes).
//
//   strings     no U+0000, no unpaired UTF-16 surrogate
//   timestamps  RFC 3339 with an offset, in [1970-01-01T00:00:00Z, now + 5 min] after offset
//               normalisation (the upper bound needs the clock: `futureTimestampProblem`)
//   JSON        an object whose keys and string values are storable strings at any depth,
//               numbers finite, nesting at most MAX_JSON_DEPTH, at most `maxBytes`. It is
//               stored exactly as sent (./json-source.ts): when its source text was kept, the
//               rules and the bound apply to that text, every member of it (a duplicate key's
//               shadowed value too) — what is stored is what is checked. A value that arrived
//               parsed is checked as the JSON.stringify text it is stored as. The parsed value
//               is kept as it is, never copied: a `__proto__` or `constructor` key is stored
//               like any other key.
import * as z from 'zod/mini'
import { jsonText, sourceIssues, sourceOf } from './json-source.ts'

/** How far in the future a timestamp may lie (clock skew between an agent and us). */
export const MAX_FUTURE_MS = 5 * 60 * 1000
/** The earliest storable instant: the Unix epoch. */
export const MIN_TIMESTAMP_MS = 0
/** Deepest nesting of arrays and objects in a JSON value (the top-level object is depth 1). */
export const MAX_JSON_DEPTH = 32

// Without the `u` flag a regex sees UTF-16 code units, which is what "unpaired" is about.
// biome-ignore lint/suspicious/noControlCharactersInRegex: NUL is exactly what it finds
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/** Why no store would take `text` as it is, or undefined when every store would. */
export function unstorableReason(text: string): string | undefined {
  const match = UNSTORABLE.exec(text)
  if (!match) return undefined
  return match[0] === '\u0000'
    ? 'Must not contain U+0000 (NUL)'
    : 'Must not contain an unpaired UTF-16 surrogate'
}

export function isStorableString(text: string): boolean {
  return !UNSTORABLE.test(text)
}

const storable = z.refine<string>(isStorableString, {
  message: 'Must not contain U+0000 (NUL) or an unpaired UTF-16 surrogate',
})

/** A string of `min`–`max` UTF-16 code units that every store accepts. */
export const storableString = (min: number, max: number) =>
  z.string().check(z.minLength(min), z.maxLength(max), storable)

/**
 * A path parameter: storable (else a 400 naming the reason, whoever asks: it tells nothing
 * about what exists), and, when bounds are given, `min`–`max` characters (checked first).
 */
export const storableParam = (bounds?: { min: number; max: number }) => {
  const length = bounds && `Must be ${bounds.min} to ${bounds.max} characters`
  return z
    .string()
    .check(
      ...(bounds && length
        ? [
            z.minLength(bounds.min, { message: length, abort: true }),
            z.maxLength(bounds.max, { message: length, abort: true }),
          ]
        : []),
      (ctx) => {
        const reason = unstorableReason(ctx.value)
        if (reason) ctx.issues.push({ code: 'custom', message: reason, input: ctx.value })
      },
    )
}

/** Identifiers of agents, users and tasks, idempotency keys: 1–128 storable characters. */
export const identifier = storableString(1, 128)

/**
 * An RFC 3339 timestamp with an offset, at or after the Unix epoch once normalised to UTC.
 * Calendar dates are validated (no 2023-02-29). The upper bound depends on the clock: check
 * it with `futureTimestampProblem(value, now)` where the clock is at hand.
 */
export const storableTimestamp = z.iso.datetime({ offset: true }).check(
  z.refine((value) => Date.parse(value) >= MIN_TIMESTAMP_MS, {
    message: 'Must not be before 1970-01-01T00:00:00Z',
  }),
)

/** The timestamp normalised to UTC with millisecond precision, as the stores keep it. */
export function normaliseTimestamp(value: string): string {
  return new Date(Date.parse(value)).toISOString()
}

/** The message for a timestamp too far in the future, or undefined when it is in range. */
export function futureTimestampProblem(value: string, now: number): string | undefined {
  return Date.parse(value) > now + MAX_FUTURE_MS
    ? 'Must not be more than 5 minutes in the future'
    : undefined
}

export interface JsonIssue {
  /** Path below the JSON value (object keys and array indexes). */
  path: (string | number)[]
  message: string
}

/**
 * Every reason the stores would refuse `value` (a value from JSON.parse), with its path.
 * Stops at the first issue of each branch so a hostile value costs one walk.
 */
export function jsonIssues(value: unknown, maxDepth = MAX_JSON_DEPTH): JsonIssue[] {
  const issues: JsonIssue[] = []
  const walk = (node: unknown, path: (string | number)[], depth: number): void => {
    if (node === null || typeof node === 'boolean') return
    if (typeof node === 'string') {
      const reason = unstorableReason(node)
      if (reason) issues.push({ path, message: reason })
      return
    }
    if (typeof node === 'number') {
      // JSON.parse turns 1e400 into Infinity, which JSON.stringify would write as null.
      if (!Number.isFinite(node)) issues.push({ path, message: 'Must be a finite number' })
      return
    }
    if (typeof node !== 'object') {
      issues.push({ path, message: 'Must be a JSON value' })
      return
    }
    if (depth > maxDepth) {
      issues.push({ path, message: `Must not nest deeper than ${maxDepth} levels` })
      return
    }
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) walk(node[i], [...path, i], depth + 1)
      return
    }
    for (const key of Object.keys(node)) {
      const reason = unstorableReason(key)
      if (reason) {
        issues.push({ path: [...path, key], message: `Key: ${reason}` })
        continue
      }
      walk((node as Record<string, unknown>)[key], [...path, key], depth + 1)
    }
  }
  walk(value, [], 1)
  return issues
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** UTF-8 bytes of `value` as it is stored: its source text if kept, else JSON.stringify's. */
export function jsonByteLength(value: unknown): number {
  return new TextEncoder().encode(jsonText(value)).byteLength
}

/**
 * A free-form JSON object the stores keep exactly as parsed. Validated in place (zod's record
 * would copy it through plain assignment, and `__proto__` would then set the copy's
 * prototype instead of becoming a key); the output is the input object itself.
 */
export const storableJsonObject = (maxBytes: number) =>
  z
    .unknown()
    .check((ctx) => {
      const value = ctx.value
      if (!isPlainObject(value)) {
        ctx.issues.push({ code: 'custom', message: 'Must be a JSON object', input: value })
        return
      }
      const source = sourceOf(value)
      const issues =
        source === undefined
          ? jsonIssues(value)
          : sourceIssues(source, MAX_JSON_DEPTH, unstorableReason)
      for (const issue of issues) {
        ctx.issues.push({ code: 'custom', message: issue.message, input: value, path: issue.path })
      }
      // Refused already; and measuring a value nested past the limit would mean serialising it
      // (JSON.stringify recurses: deep enough, it throws, and the refusal became a 500).
      if (issues.length > 0) return
      if (jsonByteLength(value) > maxBytes) {
        ctx.issues.push({
          code: 'custom',
          message: `Must be at most ${maxBytes} bytes as sent`,
          input: value,
        })
      }
    })
    // JSON Schema sees an object; the limits above are prose in the OpenAPI document.
    .register(z.globalRegistry, {
      type: 'object',
    }) as unknown as z.ZodMiniType<Record<string, unknown>, Record<string, unknown>>
