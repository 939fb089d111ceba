// The problem body as a schema, for the OpenAPI document and the tests' contract check (the
// answers' types in ./problem.ts are derived from it). Its own module: the lazily loaded
// generator imports it, and nothing on the request path needs it.
import * as z from 'zod/mini'
import { onFirstUse } from './common.ts'

export const fieldError = onFirstUse(() =>
  z
    .strictObject({ path: z.string(), message: z.string() })
    .register(z.globalRegistry, { id: 'FieldError' }),
)

/** RFC 9457 problem details with the contract's members and OAuth's on the token routes. */
export const problem = onFirstUse(() =>
  z
    .strictObject({
      type: z.string().check(z.describe('A relative reference: `/problems/<code>`.')),
      title: z.string(),
      status: z.number().check(z.int(), z.minimum(400), z.maximum(599)),
      detail: z.optional(z.string()),
      code: z.string().check(z.describe('Stable machine-readable code.')),
      request_id: z.string().check(z.describe('Equals the `X-Request-Id` response header.')),
      errors: z.optional(
        z
          .array(fieldError())
          .check(
            z.describe(
              'Validation failures: one entry per field (`path` is dotted, e.g. `updates.3.progress`).',
            ),
          ),
      ),
      error: z.optional(
        z.string().check(z.describe('Token endpoints only: the OAuth error code (RFC 6749 §5.2).')),
      ),
      error_description: z.optional(
        z.string().check(z.describe('Token endpoints only: the OAuth error description.')),
      ),
    })
    .register(z.globalRegistry, {
      id: 'Problem',
      description:
        'RFC 9457 problem details. `type` is `/problems/<code>`; `code` is stable and machine-readable (see `x-problem-types`). Never a stack trace, secret, SQL text or upstream error.',
    }),
)
