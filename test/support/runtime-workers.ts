// Dispatches scenario requests to the Workers entry inside workerd.
import { createExecutionContext, waitOnExecutionContext } from 'cloudflare:test'
import worker from '../../src/worker.ts'
import type { Dispatch } from './runtime.ts'

export const runtimeName: 'workers' | 'edge' = 'workers'

export const dispatch: Dispatch = async (request, env) => {
  const ctx = createExecutionContext()
  const response = await worker.fetch(request, env, ctx)
  return { response, settled: waitOnExecutionContext(ctx) }
}
