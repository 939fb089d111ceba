// One "isolate" of a scenario for the progress scenarios: its own services over `env` (which
// decides the Redis prefix), an agent's token, and the calls those tests make.
import { expect } from 'vitest'
import { bearer, getToken, jsonPost } from './agents.ts'
import type { Scenario } from './scenario.ts'

const PROGRESS = '/api/v1/agent/progress'

export async function progressIsolate(
  base: Scenario,
  env: Record<string, string | undefined>,
  agent?: string,
) {
  const i = base.withEnv(env)
  const auth = bearer((await getToken(i, agent)).access_token)
  await i.settle()
  return {
    s: i,
    auth,
    async post(body: unknown, headers: Record<string, string> = {}) {
      const res = await i.fetch(PROGRESS, jsonPost(body, { ...auth, ...headers }))
      return { res, body: await res.json() }
    },
    async batch(id: string) {
      const res = await i.fetch(`${PROGRESS}/batches/${id}`, { headers: auth })
      return { res, body: await res.json() }
    },
    async flush() {
      await i.settle()
      const res = await i.fetch('/api/v1/internal/flush', {
        method: 'POST',
        headers: { Authorization: `Bearer ${base.env.CRON_SECRET}` },
      })
      expect(res.status).toBe(200)
      await i.settle()
      return (await res.json()) as { flushed: number; remaining: number; dead_letters: number }
    },
    async health() {
      const res = await i.fetch('/api/v1/agent/health', { method: 'POST', headers: auth })
      return res.json()
    },
  }
}
