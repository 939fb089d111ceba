// Dispatches scenario requests to the Vercel edge function inside the edge-runtime VM.
import { createVercelHandler } from '../../src/vercel.ts'
import type { Dispatch } from './runtime.ts'

export const runtimeName: 'workers' | 'edge' = 'edge'

const handlers = new WeakMap<object, ReturnType<typeof createVercelHandler>>()

export const dispatch: Dispatch = async (request, env) => {
  let handler = handlers.get(env)
  if (!handler) {
    // One handler (one isolate's worth of state) per scenario env, as Vercel would have.
    handler = createVercelHandler(() => env)
    handlers.set(env, handler)
  }
  const pending: Promise<unknown>[] = []
  const response = await handler(request, { waitUntil: (p) => void pending.push(p) })
  const settled = (async () => {
    // Background work may schedule more background work; wait until none is left.
    for (let seen = 0; seen < pending.length; seen = pending.length) {
      await Promise.allSettled(pending.slice(seen))
    }
  })()
  return { response, settled }
}
