// GET /api/v1/agent/users — scope context:read: the users the agent holds grants for, a page
// at a time. The rules are src/users/list.ts's; the MCP tool `list_users` makes the same call.
import { type Context, Hono } from 'hono'
import { type UsersPage, usersPage, usersQuery } from '../contract/users.ts'
import type { AppEnv } from '../http/context.ts'
import { type Operation, problem, RATE_LIMIT, unavailable } from '../http/operation.ts'
import { requestScope } from '../http/scope.ts'
import { authorize, validate } from '../http/validate.ts'
import { listUsers as list } from '../users/list.ts'

export const listUsers = {
  method: 'get',
  path: '/api/v1/agent/users',
  operationId: 'listUsers',
  summary: 'The users this agent holds grants for',
  description:
    'Needs scope `context:read`. Ordered by user id; page with `cursor` (the previous page’s `next_cursor`) and `limit`. Needs the database: while it fails, `503 database_unavailable`.',
  tag: 'context',
  scope: 'context:read',
  request: { query: usersQuery },
  responses: {
    '200': {
      description: 'One page',
      headers: RATE_LIMIT,
      content: {
        'application/json': {
          schema: usersPage,
          example: {
            users: [
              { id: 'demo-user-1', display_name: 'Ada Lovelace' },
              { id: 'demo-user-2', display_name: 'Grace Hopper' },
            ],
            next_cursor: null,
          },
        },
      },
    },
    '400': problem(
      ['validation_failed'],
      '`limit` outside 1–100, a `cursor` this API did not give, or an unknown query parameter',
    ),
    '503': unavailable(['configuration_error', 'auth_unavailable', 'database_unavailable']),
  },
} as const satisfies Operation

export const usersOperations: readonly Operation[] = [listUsers]

/** The operation's one service call; the MCP tool `list_users` makes the same. */
export function readUsers(
  c: Context<AppEnv>,
  page: { cursor?: string; limit?: number },
): Promise<UsersPage> {
  return list(c.get('services'), { agentId: c.get('agentId')!, ...page }, requestScope(c))
}

export const usersRoutes = new Hono<AppEnv>().get(
  listUsers.path,
  authorize(listUsers),
  validate(listUsers),
  async (c) => {
    const { cursor, limit } = c.req.valid('query')
    return c.json(await readUsers(c, { cursor, limit }))
  },
)
