// The MCP tools (POST /mcp). Each is an operation of the REST API seen as a tool: its input is
// built from the same zod schemas that validate the REST request, its call is the very service
// call the REST route makes (exported beside the route's handler, for the same authenticated
// principal), and its result is the REST answer's body. So every rule — grants, idempotency,
// storable input, degradation — holds on both surfaces, and neither says more than the other.
//
// Plain data and the routes' own calls: no SDK here. The SDK server (./server.ts) is loaded
// only when /mcp is first called; the tools' JSON Schemas are built there (./schema.ts).
import type { Context } from 'hono'
import * as z from 'zod/mini'
import { userContextResponse, userIdParam } from '../contract/context.ts'
import { fieldErrors } from '../contract/field-errors.ts'
import type { FieldError } from '../contract/problem.ts'
import {
  batchIdParam,
  batchStatus,
  progressAccepted,
  progressBatch,
  progressUpdate,
} from '../contract/progress.ts'
import type { Scope } from '../contract/token.ts'
import { usersCursor, usersLimit, usersPage } from '../contract/users.ts'
import type { AppEnv } from '../http/context.ts'
import type { Operation } from '../http/operation.ts'
import { contextBody, getUserContext, readUserContext } from '../routes/context.ts'
import {
  acceptProgress,
  getProgressBatch,
  readBatchStatus,
  reportProgress,
} from '../routes/progress.ts'
import { listUsers, readUsers } from '../routes/users.ts'

/** What a successful call gives: the REST body (structured) and its JSON text. */
export interface ToolAnswer {
  structured: Record<string, unknown>
  /** One short line saying what happened. */
  summary: string
  /** The structured content serialised (cheaper when the route already has it as text). */
  json?: string
}

/** The arguments do not match the tool's input schema (answered as a JSON-RPC -32602). */
export class InvalidArguments extends Error {
  override readonly name = 'InvalidArguments'
  readonly errors: FieldError[]
  constructor(errors: FieldError[]) {
    super('Invalid arguments')
    this.errors = errors
  }
}

export interface Tool {
  name: string
  title: string
  description: string
  /** The scope a token needs to call it (checked before the call: 403 insufficient_scope). */
  scope: Scope
  /** The REST operation it mirrors (its service call, its answer). */
  operation: Operation
  /** MCP tool annotations (hints only). */
  readOnly: boolean
  input: () => z.ZodMiniType
  output: () => z.ZodMiniType
  /** Validates `args` (else InvalidArguments), then makes the operation's service call. */
  call(c: Context<AppEnv>, args: unknown): Promise<ToolAnswer>
}

function tool<S extends z.ZodMiniType>(
  definition: Omit<Tool, 'call' | 'input'> & {
    input: () => S
    run(c: Context<AppEnv>, args: z.output<S>): Promise<ToolAnswer>
  },
): Tool {
  const { run, ...rest } = definition
  return {
    ...rest,
    async call(c, args) {
      const parsed = await definition.input().safeParseAsync(args ?? {})
      if (!parsed.success) throw new InvalidArguments(fieldErrors(parsed.error.issues))
      return run(c, parsed.data)
    },
  }
}

const once = <S>(build: () => S) => {
  let built: S | undefined
  return () => (built ??= build())
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`

export const TOOLS: readonly Tool[] = [
  tool({
    name: 'get_user_context',
    title: 'A user’s context',
    description:
      'The profile, free-form context (goals, preferences, notes) and task progress of a user this agent holds a grant for. An unknown user and one without a grant give the same error. When the database cannot answer, the result is degraded (`degraded: true`, `source` says from where).',
    scope: 'context:read',
    operation: getUserContext,
    readOnly: true,
    input: once(() => z.strictObject({ user_id: userIdParam.shape.userId })),
    output: userContextResponse,
    async run(c, { user_id }) {
      const json = contextBody(await readUserContext(c, user_id, false))
      const structured = JSON.parse(json) as {
        source: string
        degraded: boolean
        progress: unknown[]
      }
      return {
        structured,
        json,
        summary: `Context of ${user_id}: ${plural(structured.progress.length, 'task')}, from ${structured.source}${structured.degraded ? ' (degraded)' : ''}.`,
      }
    },
  }),
  tool({
    name: 'report_progress',
    title: 'Report progress',
    description:
      'Records progress on tasks: one `update`, or `updates` (1–100), validated and grant-checked together (all or nothing). Give each update an `idempotency_key` so a retry is recorded once, whichever surface (MCP or REST) it goes through. A result means the updates are durable (`queued` in the buffer or `committed`).',
    scope: 'progress:write',
    operation: reportProgress,
    readOnly: false,
    input: once(() =>
      z
        .strictObject({
          update: z.optional(progressUpdate),
          updates: z.optional(progressBatch.shape.updates),
        })
        .check(
          z.refine((v) => (v.update === undefined) !== (v.updates === undefined), {
            message: 'Give exactly one of `update` and `updates`',
          }),
        ),
    ),
    output: progressAccepted,
    async run(c, { update, updates }) {
      const batch = updates !== undefined
      const body = await acceptProgress(c, { updates: updates ?? [update!], batch })
      return {
        structured: body,
        summary: `Accepted ${plural(body.accepted, 'update')} (${plural(body.duplicates, 'duplicate')}), ${body.status}: batch ${body.batch_id}.`,
      }
    },
  }),
  tool({
    name: 'get_progress_batch',
    title: 'Where a batch is',
    description:
      'Whether the updates of a `report_progress` result (its `batch_id`) are still `queued` or `committed` to the database. Only the agent that reported a batch sees it.',
    scope: 'progress:write',
    operation: getProgressBatch,
    readOnly: true,
    input: once(() => z.strictObject({ batch_id: batchIdParam.shape.batchId })),
    output: batchStatus,
    async run(c, { batch_id }) {
      const body = await readBatchStatus(c, batch_id)
      return {
        structured: body,
        summary: `Batch ${body.batch_id}: ${body.status}, ${plural(body.accepted, 'update')}.`,
      }
    },
  }),
  tool({
    name: 'list_users',
    title: 'The users this agent may act for',
    description:
      'The users this agent holds grants for, ordered by id, a page at a time: pass `next_cursor` back as `cursor` for the next page (null on the last).',
    scope: 'context:read',
    operation: listUsers,
    readOnly: true,
    input: once(() =>
      z.strictObject({ cursor: z.optional(usersCursor), limit: z.optional(usersLimit) }),
    ),
    output: usersPage,
    async run(c, { cursor, limit }) {
      const body = await readUsers(c, { cursor, limit })
      return {
        structured: body,
        summary: `${plural(body.users.length, 'user')}${body.next_cursor ? '; more with the next cursor' : ''}.`,
      }
    },
  }),
]

const BY_NAME = new Map(TOOLS.map((t) => [t.name, t]))

export function toolNamed(name: unknown): Tool | undefined {
  return typeof name === 'string' ? BY_NAME.get(name) : undefined
}
