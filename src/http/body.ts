// Request validation as middleware: @hono/zod-validator with one shared hook that answers the
// contract's problem+json (`validation_failed`, `errors[].path`), and in front of a JSON body
// the media-type guard (else 415) and the JSON syntax check (else 400 invalid_json), which
// hono's validator does not give: it reads a body of another type as `{}` and answers
// malformed JSON with a bare HTTPException.
import { zValidator } from '@hono/zod-validator'
import type { Context, MiddlewareHandler } from 'hono'
import type * as z from 'zod/mini'
import { fieldErrors } from '../contract/field-errors.ts'
import { attachSources } from '../contract/json-source.ts'
import { problems } from '../contract/problem.ts'
import type { AppEnv } from './context.ts'

const JSON_MEDIA_TYPE = /^application\/([\w.-]+\+)?json$/i

/** application/json and the structured-syntax suffix types (application/problem+json, …). */
export function isJsonMediaType(type: string): boolean {
  return JSON_MEDIA_TYPE.test(type)
}

export function mediaType(header: string | undefined): string {
  return (header ?? '').split(';')[0]!.trim().toLowerCase()
}

/** Whether the request carries a body at all (a length or a stream). */
export function hasBody(req: Request): boolean {
  const length = req.headers.get('content-length')
  if (length !== null) return Number(length) > 0
  return req.body !== null
}

type Target = 'json' | 'param' | 'query'

/** What the shared hook says about each target's failures. */
const DETAIL: Record<Target, string | undefined> = {
  json: undefined, // problems.validation's own: "The request body is not valid"
  param: 'A path parameter is not valid',
  query: 'A query parameter is not valid',
}

/** The one hook every validator shares: a failure is a 400 listing every field error. */
function hook(target: Target) {
  return (result: { success: boolean; error?: { issues: z.core.$ZodIssue[] } }) => {
    if (!result.success) {
      throw problems.validation(fieldErrors(result.error?.issues ?? []), DETAIL[target])
    }
  }
}

export interface JsonBodyOptions {
  /** An absent body is valid (`undefined`); a present one must still match. */
  optional?: boolean
  /**
   * Members whose source text is kept with the parsed value, for a store that keeps them
   * exactly as sent (src/contract/json-source.ts; patterns like `updates.*.data`).
   */
  sources?: readonly string[]
  /**
   * The schema that judges a given body, when `schema` is a union whose failures are best
   * explained in one member's terms (e.g. one update or a batch of them). It must accept
   * exactly what `schema` accepts.
   */
  select?: (body: unknown) => z.ZodMiniType
}

/**
 * A JSON body: the right media type (else 415), valid JSON (else 400 invalid_json), and a
 * schema match (else 400 validation_failed with every field error). The value is read by
 * `c.req.valid('json')`, typed by the schema.
 */
export function jsonBody<S extends z.ZodMiniType>(
  schema: S,
  options: JsonBodyOptions = {},
): MiddlewareHandler<AppEnv, string, { in: { json: z.input<S> }; out: { json: z.output<S> } }> {
  const select = options.select
  const validate = zValidator(
    'json',
    schema,
    hook('json'),
    // zod-validator types the result by `schema`; `select` picks a member of it.
    select && {
      validationFunction: (_schema, value) => select(value).safeParseAsync(value) as never,
    },
  )
  return async (c, next) => {
    if (options.optional && !hasBody(c.req.raw)) {
      c.req.addValidatedData('json', undefined as never)
      return next()
    }
    if (!isJsonMediaType(mediaType(c.req.header('content-type')))) {
      throw problems.unsupportedMediaType(['application/json'])
    }
    // Parsed once, here, so malformed JSON is our 400. hono's validator reads the body through
    // c.req.json(), which parses the cached text again: it gets this parse instead, which
    // carries the members' source text (a second parse would not).
    const text = await c.req.text()
    const parsed = parseJson(text)
    if (options.sources?.length) attachSources(text, parsed, options.sources)
    c.req.json = () => Promise.resolve(parsed as never)
    return validate(c as Context, next)
  }
}

/** Path parameters, checked by `schema` (a 400 naming each parameter that fails). */
export function pathParams<S extends z.ZodMiniType>(
  schema: S,
): MiddlewareHandler<AppEnv, string, { in: { param: z.input<S> }; out: { param: z.output<S> } }> {
  return zValidator('param', schema, hook('param')) as never
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    throw problems.invalidJson()
  }
}

/** Query parameters, checked by `schema` (a 400 naming each parameter that fails). */
export function queryParams<S extends z.ZodMiniType>(
  schema: S,
): MiddlewareHandler<AppEnv, string, { in: { query: z.input<S> }; out: { query: z.output<S> } }> {
  return zValidator('query', schema, hook('query')) as never
}
