// Request bodies: the right media type (else 415), valid JSON (else 400 invalid_json), and a
// schema match (else 400 validation_failed with every field error). The validated value is
// registered like Hono's own validator does, so `c.req.valid('json')` and the typed client
// (`hc<AppType>`) both see the schema's types.
import type { MiddlewareHandler } from 'hono'
import type * as z from 'zod/mini'
import { fieldErrors } from '../contract/field-errors.ts'
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

export function jsonBody<S extends z.ZodMiniType>(
  schema: S,
  options: { optional?: boolean } = {},
): MiddlewareHandler<AppEnv, string, { in: { json: z.input<S> }; out: { json: z.output<S> } }> {
  return async (c, next) => {
    let value: unknown
    if (options.optional && !hasBody(c.req.raw)) {
      value = undefined
    } else {
      if (!JSON_MEDIA_TYPE.test(mediaType(c.req.header('content-type')))) {
        throw problems.unsupportedMediaType(['application/json'])
      }
      value = parseJson(await c.req.text())
    }
    const result = schema.safeParse(value)
    if (!result.success) throw problems.validation(fieldErrors(result.error.issues))
    c.req.addValidatedData('json', result.data as object)
    await next()
  }
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    throw problems.invalidJson()
  }
}
