// The example agent against the dev stack over real HTTP: the worker bundled and served by
// workerd, the Neon and Upstash stand-ins in front of the real engines.
import { afterAll, beforeAll, expect, test } from 'vitest'
import { runExampleAgent } from '../../examples/agent.ts'
import { type E2eServer, startE2eServer } from '../support/e2e-server.ts'

let e2e: E2eServer

beforeAll(async () => {
  e2e = await startE2eServer({ name: 'e2e', logLevel: 'warn' })
}, 120_000)

afterAll(async () => {
  await e2e?.close()
})

test('the example agent gets a token, reads context, reports progress and checks health', async () => {
  const result = await runExampleAgent({ baseUrl: e2e.server.url, agentSecret: e2e.secret })
  expect(result.greeting).toBe('Ada Lovelace (Europe/Berlin) has 2 task(s) in progress')
  expect(result.progressBatch).toMatch(/^[0-9a-f-]{36}$/)
  expect(['queued', 'committed']).toContain(result.progressStatus)
  expect(result.health).toMatch(
    /^(healthy|degraded) \(database: pass, redis: (pass|warn), circuit_breakers: pass, token_manager: pass, configuration: (pass|warn)\)$/,
  )
})
