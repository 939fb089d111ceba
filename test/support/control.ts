// Client of the local stack's control server; works from Node, workerd and the edge VM.
import { inject } from 'vitest'
import type { FaultPlan, StandinStats } from '../../local/faults.ts'
import type { ScenarioResources } from '../../local/stack.ts'

export type UpstreamName = 'neon' | 'redis'

export function stackInfo() {
  return inject('stack')
}

async function call(method: string, path: string, body?: unknown): Promise<Response> {
  const res = await fetch(`${stackInfo().controlUrl}${path}`, {
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  if (!res.ok) throw new Error(`control ${method} ${path}: ${res.status} ${await res.text()}`)
  return res
}

export const control = {
  async createScenario(): Promise<ScenarioResources> {
    return (await call('POST', '/scenarios')).json()
  },
  async closeScenario(id: string): Promise<void> {
    await call('DELETE', `/scenarios/${id}`)
  },
  /** Fault plans and counters of one scenario's proxy in front of an upstream. */
  upstream(id: string, name: UpstreamName) {
    const base = `/scenarios/${id}`
    return {
      setFaults: async (plan: FaultPlan) =>
        void (await call('PUT', `${base}/faults/${name}`, plan)),
      clearFaults: async () => void (await call('DELETE', `${base}/faults/${name}`)),
      stats: async (): Promise<StandinStats> => (await call('GET', `${base}/stats/${name}`)).json(),
      resetStats: async () => void (await call('POST', `${base}/stats/${name}/reset`)),
    }
  },
}
