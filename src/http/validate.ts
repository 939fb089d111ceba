// Registering a route from its operation (./operation.ts): the validators built from the
// operation's own schemas, and the bearer check its scope asks for.
import type { MiddlewareHandler } from 'hono'
import type * as z from 'zod/mini'
import { requireAuth } from './auth.ts'
import { jsonBody, pathParams, queryParams } from './body.ts'
import type { AppEnv } from './context.ts'
import type { Operation } from './operation.ts'

type Input<O extends Operation> = NonNullable<O['request']>
type ParamOut<O extends Operation> = Input<O>['params'] extends z.ZodMiniType
  ? { param: z.output<Input<O>['params']> }
  : Record<never, never>
type QueryOut<O extends Operation> = Input<O>['query'] extends z.ZodMiniType
  ? { query: z.output<Input<O>['query']> }
  : Record<never, never>
type JsonOut<O extends Operation> = Input<O>['json'] extends z.ZodMiniType
  ? {
      json: Input<O>['optional'] extends true
        ? z.output<Input<O>['json']> | undefined
        : z.output<Input<O>['json']>
    }
  : Record<never, never>

/** The validated input of `op`, as `c.req.valid(…)` returns it. */
export type Validated<O extends Operation> = ParamOut<O> & QueryOut<O> & JsonOut<O>

/**
 * The validators of `op`'s request, in one middleware: path parameters, the query, then the
 * JSON body.
 * Each is built from the very schema the document shows.
 */
export function validate<const O extends Operation>(
  op: O,
): MiddlewareHandler<AppEnv, string, { out: Validated<O> }> {
  const steps: MiddlewareHandler<AppEnv>[] = []
  const request = op.request
  if (request?.params) steps.push(pathParams(request.params) as MiddlewareHandler<AppEnv>)
  if (request?.query) steps.push(queryParams(request.query) as MiddlewareHandler<AppEnv>)
  if (request?.json) {
    const options = {
      optional: request.optional,
      select: request.select,
      sources: request.jsonSources,
    }
    steps.push(jsonBody(request.json, options) as MiddlewareHandler<AppEnv>)
  }
  // One validator (most operations): itself, without a chain around it.
  if (steps.length === 1)
    return steps[0]! as MiddlewareHandler<AppEnv, string, { out: Validated<O> }>
  return async (c, next) => {
    const run = async (i: number): Promise<void> => {
      const step = steps[i]
      if (!step) return next()
      const answer = await step(c, () => run(i + 1))
      if (answer instanceof Response) c.res = answer
    }
    await run(0)
  }
}

/** The bearer check `op.scope` asks for (`options`: see requireAuth). */
export function authorize(
  op: Operation,
  options?: Parameters<typeof requireAuth>[1],
): MiddlewareHandler<AppEnv> {
  if (!op.scope) throw new Error(`${op.operationId} takes no bearer token`)
  return requireAuth(op.scope === 'any' ? undefined : op.scope, options)
}
