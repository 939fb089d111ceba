// The SDK (agent-api/client) with key-bound agents, against the app in both runtimes: a
// private_key_jwt agent whose tokens are DPoP-bound, and a client that acts for one user by
// token exchange. Still one token request for a burst of calls (single-flight).
import { exportJWK, generateKeyPair } from 'jose'
import { describe, expect, test } from 'vitest'
import { createAgent, grantUser, setDpopRequired, setPublicKey } from '../../src/auth/agents.ts'
import { AgentApiError, createAgentClient } from '../../src/client/index.ts'
import { agentSecret, DEMO_AGENT, decodeJwt } from '../support/agents.ts'
import { viaRequest } from '../support/peers.ts'
import { BASE_URL, randomSecret, scenario } from '../support/scenario.ts'

const s = await scenario()
const agent = `sdk-key-agent-${randomSecret(4)}`
const signing = await generateKeyPair('ES256')
await createAgent(s.db(), { id: agent, ownSecret: false })
await setPublicKey(s.db(), agent, await exportJWK(signing.publicKey))
await setDpopRequired(s.db(), agent, true)
await grantUser(s.db(), agent, 'demo-user-1')
await grantUser(s.db(), agent, 'demo-user-2')

/** The scenario's fetch, counting token requests. */
function counted() {
  const seen = { token: 0 }
  const fetch = (input: string | URL | Request, init?: RequestInit) => {
    const url = input instanceof Request ? input.url : String(input)
    if (url.endsWith('/api/v1/agent/token')) seen.token++
    return viaRequest(s, input, init)
  }
  return { seen, fetch }
}

describe(`the SDK with keys (${s.runtime})`, () => {
  test('private_key_jwt + DPoP: bound tokens, proofs on every call, one token request for a burst', async () => {
    const { seen, fetch } = counted()
    const client = createAgentClient({
      baseUrl: BASE_URL,
      agentId: agent,
      privateKey: signing.privateKey,
      dpopKey: (await generateKeyPair('ES256')) as CryptoKeyPair,
      fetch,
    })
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => client.getUserContext('demo-user-1')),
    )
    expect(answers.every((a) => !a.notModified && a.data.user.id === 'demo-user-1')).toBe(true)
    expect(seen.token).toBe(1)
    const token = await client.getAccessToken()
    expect(decodeJwt(token).payload).toMatchObject({ client_id: agent, cnf: {} })
    // The same token without a proof is refused: it is bound.
    const bare = await s.fetch('/api/v1/agent/users/demo-user-1/context', {
      headers: { Authorization: `Bearer ${token}` },
    })
    expect(bare.status).toBe(401)
  })

  test('forUser: a token exchanged for one user serves that user only', async () => {
    const { seen, fetch } = counted()
    const client = createAgentClient({
      baseUrl: BASE_URL,
      agentId: DEMO_AGENT,
      agentSecret: agentSecret(s),
      fetch,
    })
    const forUser = client.forUser('demo-user-1', { scope: 'context:read' })
    const results = await Promise.all(
      Array.from({ length: 10 }, () => forUser.getUserContext('demo-user-1')),
    )
    expect(results.every((r) => !r.notModified)).toBe(true)
    // One client-credentials request and one exchange.
    expect(seen.token).toBe(2)
    const delegated = decodeJwt(await forUser.getAccessToken()).payload
    expect(delegated).toMatchObject({ sub: 'demo-user-1', act: { sub: DEMO_AGENT } })
    const other = await forUser.getUserContext('demo-user-2').catch((err: unknown) => err)
    expect(other).toBeInstanceOf(AgentApiError)
    expect((other as AgentApiError).status).toBe(404)
    // The agent's own client still reads both.
    expect((await client.getUserContext('demo-user-2')).notModified).toBe(false)
  })

  test('a DPoP agent acting for a user: the exchanged token is bound as well', async () => {
    const client = createAgentClient({
      baseUrl: BASE_URL,
      agentId: agent,
      privateKey: signing.privateKey,
      dpopKey: (await generateKeyPair('ES256')) as CryptoKeyPair,
      fetch: counted().fetch,
    })
    const forUser = client.forUser('demo-user-2')
    const result = await forUser.getUserContext('demo-user-2')
    expect(result.notModified).toBe(false)
    expect(decodeJwt(await forUser.getAccessToken()).payload).toMatchObject({
      sub: 'demo-user-2',
      act: { sub: agent },
      cnf: {},
    })
  })
})
