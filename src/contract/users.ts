// GET /api/v1/agent/users (CONTRACT.md v2): the users an agent holds grants for, a page at a
// time. The page's bounds are defined once here; the query (strings) and the MCP tool's input
// (a number) are both built from them.
import * as z from 'zod/mini'
import { identifier, onFirstUse } from './common.ts'
import { storableString } from './storable.ts'

export const USERS_PAGE_DEFAULT = 50
export const USERS_PAGE_MAX = 100

/** An opaque cursor, as `next_cursor` gave it. */
export const usersCursor = storableString(1, 512).check(
  z.describe('`next_cursor` of the previous page; absent for the first page.'),
)

const LIMIT_DESCRIPTION = `Users per page, 1–${USERS_PAGE_MAX} (default ${USERS_PAGE_DEFAULT}).`

/** `limit` as a number (the MCP tool's input). */
export const usersLimit = z
  .number()
  .check(z.int(), z.minimum(1), z.maximum(USERS_PAGE_MAX), z.describe(LIMIT_DESCRIPTION))

/** The query of GET /api/v1/agent/users: `limit` is a decimal string there. */
export const usersQuery = z.strictObject({
  cursor: z.optional(usersCursor),
  limit: z.optional(
    z.pipe(
      z
        .string()
        .check(
          z.regex(/^([1-9][0-9]?|100)$/, `Must be an integer from 1 to ${USERS_PAGE_MAX}`),
          z.describe(LIMIT_DESCRIPTION),
        ),
      z.transform(Number),
    ),
  ),
})

export const usersPage = onFirstUse(() =>
  z
    .strictObject({
      users: z.array(
        z.strictObject({ id: identifier, display_name: z.string() }).register(z.globalRegistry, {
          id: 'GrantedUser',
          description: 'A user the agent holds a grant for.',
        }),
      ),
      next_cursor: z
        .nullable(z.string())
        .check(z.describe('Pass as `cursor` for the next page; null on the last page.')),
    })
    .register(z.globalRegistry, {
      id: 'UsersPage',
      description: 'One page of the users the agent holds grants for, ordered by id.',
    }),
)
export type UsersPage = z.output<ReturnType<typeof usersPage>>
