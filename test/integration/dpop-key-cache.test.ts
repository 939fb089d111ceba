// The per-isolate cache of DPoP proof keys, seen from inside the isolate: it keeps the key a
// token is bound to, once however the JWK is sent, and nothing for proofs by other keys —
// which are refused anyway, and which would otherwise let one client evict the others' keys.
import { generateKeyPair, generateProof } from 'dpop'
import { exportJWK, SignJWT } from 'jose'
import { describe, expect, test } from 'vitest'
import { createApp } from '../../src/app.ts'
import { ServiceCache } from '../../src/services.ts'
import { integrationScenario } from './support.ts'

const s = await integrationScenario()
const ORIGIN = 'https://agent-api.test'
const CONTEXT = '/api/v1/agent/users/demo-user-1/context'

describe('DPoP proof-key cache', () => {
  test('keeps the bound key once; proofs by other keys (50 at once) and padded JWKs add nothing', async () => {
    const env = s.env({
      DEV_AGENT_SECRET: 'agent-secret-of-the-dpop-cache-test-0123456789',
      DEV_JWT_SECRET: 'jwt-secret-of-the-dpop-cache-test-0123456789ab',
      DPOP_PROOF_MAX_AGE_SECONDS: '600',
    })
    const cache = new ServiceCache()
    const app = createApp({ services: cache })
    const call = (path: string, init?: RequestInit) =>
      app.fetch(new Request(`${ORIGIN}${path}`, init), env)
    const keys = () => cache.get(env).auth.dpopKeys

    const bound = await generateKeyPair('ES256')
    const issued = await call('/api/v1/agent/token', {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${btoa(`demo-agent:${env.DEV_AGENT_SECRET}`)}`,
        dpop: await generateProof(bound, `${ORIGIN}/api/v1/agent/token`, 'POST'),
      },
      body: 'grant_type=client_credentials',
    })
    expect(issued.status).toBe(200)
    const token = ((await issued.json()) as { access_token: string }).access_token
    const read = async (proof: string) =>
      (await call(CONTEXT, { headers: { authorization: `DPoP ${token}`, dpop: proof } })).status

    expect(
      await read(await generateProof(bound, `${ORIGIN}${CONTEXT}`, 'GET', undefined, token)),
    ).toBe(200)
    expect(keys().size).toBe(1)

    const foreign = await Promise.all(
      Array.from({ length: 50 }, async () => {
        const other = await generateKeyPair('ES256')
        return read(await generateProof(other, `${ORIGIN}${CONTEXT}`, 'GET', undefined, token))
      }),
    )
    expect(new Set(foreign)).toEqual(new Set([401]))
    expect(keys().size).toBe(1)

    // The bound key sent with another member: accepted, checked in full, not kept twice.
    const jwk = { ...(await exportJWK(bound.publicKey)), use: 'sig' }
    const padded = await new SignJWT({
      jti: crypto.randomUUID(),
      htm: 'GET',
      htu: `${ORIGIN}${CONTEXT}`,
      iat: Math.floor(Date.now() / 1000),
      ath: await athOf(token),
    })
      .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk })
      .sign(bound.privateKey)
    expect(await read(padded)).toBe(200)
    expect(keys().size).toBe(1)
  })
})

async function athOf(token: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(token))
  return Buffer.from(digest).toString('base64url')
}
