// RFC 9449 DPoP (issue 6/8), in both runtimes: tokens bound to the client's key at the token
// endpoint (`cnf.jkt`, refresh tokens too), proofs checked at every resource request, with
// oauth4webapi's DPoP handle and the `dpop` package as the clients, the refusals as a table,
// and one proof sent 50 times at once accepted once, with and without Redis.
import { calculateThumbprint, generateKeyPair, generateProof, type KeyPair } from 'dpop'
import { base64url, exportJWK, SignJWT } from 'jose'
import * as oauth from 'oauth4webapi'
import { describe, expect, test } from 'vitest'
import { createAgent, grantUser, setDpopRequired } from '../../src/auth/agents.ts'
import { createAgentClient } from '../../src/client/index.ts'
import { agentSecret, basic, DEMO_AGENT, decodeJwt, formPost } from '../support/agents.ts'
import { discover as discoverWith, peerOptions, viaRequest } from '../support/peers.ts'
import {
  BASE_URL,
  randomSecret,
  roomyIsolate,
  type Scenario,
  scenario,
} from '../support/scenario.ts'

const s = await scenario()
const TOKEN = '/api/v1/agent/token'
const TOKEN_URL = `${BASE_URL}${TOKEN}`
const CONTEXT = '/api/v1/agent/users/demo-user-1/context'
const CONTEXT_URL = `${BASE_URL}${CONTEXT}`
const EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange'
const AT = 'urn:ietf:params:oauth:token-type:access_token'

const isolate = (extra: Record<string, string | undefined> = {}) => roomyIsolate(s, extra)

const client = (sc: Scenario, id = DEMO_AGENT) => ({ Authorization: basic(id, agentSecret(sc)) })

/** A DPoP-bound token pair for `agent`, by the `dpop` package's proof. */
async function boundTokens(sc: Scenario, key: KeyPair, agent = DEMO_AGENT) {
  const res = await sc.fetch(
    TOKEN,
    formPost(
      { grant_type: 'client_credentials' },
      { ...client(sc, agent), DPoP: await generateProof(key, TOKEN_URL, 'POST') },
    ),
  )
  expect(res.status).toBe(200)
  return (await res.json()) as { access_token: string; refresh_token: string; token_type: string }
}

const dpopGet = (sc: Scenario, token: string, proof: string, path = CONTEXT) =>
  sc.fetch(path, { headers: { Authorization: `DPoP ${token}`, DPoP: proof } })

describe(`DPoP, RFC 9449 (${s.runtime})`, () => {
  test('oauth4webapi’s DPoP handle: bound token (cnf.jkt), resource request, bound refresh', async () => {
    const as = await discoverWith(s)
    expect(as.dpop_signing_alg_values_supported).toContain('ES256')
    const keyPair = await oauth.generateKeyPair('ES256')
    const c: oauth.Client = { client_id: DEMO_AGENT }
    const DPoP = oauth.DPoP(c, keyPair)
    const auth = oauth.ClientSecretBasic(agentSecret(s))
    const tokens = await oauth.processClientCredentialsResponse(
      as,
      c,
      await oauth.clientCredentialsGrantRequest(as, c, auth, new URLSearchParams(), {
        ...peerOptions(s),
        DPoP,
      }),
    )
    expect(tokens.token_type).toBe('dpop')
    const jkt = await calculateThumbprint(keyPair.publicKey)
    expect(decodeJwt(tokens.access_token).payload.cnf).toEqual({ jkt })
    const res = await oauth.protectedResourceRequest(
      tokens.access_token,
      'GET',
      new URL(CONTEXT_URL),
      new Headers(),
      undefined,
      { ...peerOptions(s), DPoP } as oauth.ProtectedResourceRequestOptions,
    )
    expect(res.status).toBe(200)
    // The refresh token is bound too: a refresh needs a proof by the same key.
    const refreshed = await oauth.processRefreshTokenResponse(
      as,
      c,
      await oauth.refreshTokenGrantRequest(as, c, auth, tokens.refresh_token!, {
        ...peerOptions(s),
        DPoP,
      }),
    )
    expect(decodeJwt(refreshed.access_token).payload.cnf).toEqual({ jkt })
    // Introspection (RFC 7662) says what the token endpoint said: a DPoP token, bound to the
    // key, and a refresh token bound to it too.
    const introspect = async (token: string) =>
      oauth.processIntrospectionResponse(
        as,
        c,
        await oauth.introspectionRequest(as, c, auth, token, peerOptions(s)),
      )
    expect(await introspect(refreshed.access_token)).toMatchObject({
      active: true,
      token_type: 'DPoP',
      cnf: { jkt },
    })
    expect(await introspect(refreshed.refresh_token!)).toMatchObject({
      active: true,
      token_type: 'refresh_token',
      cnf: { jkt },
    })
    const without = await s.fetch(
      TOKEN,
      formPost({ grant_type: 'refresh_token', refresh_token: refreshed.refresh_token! }, client(s)),
    )
    expect(without.status).toBe(400)
    expect(((await without.json()) as { error: string }).error).toBe('invalid_dpop_proof')
    const other = await generateKeyPair('ES256')
    const stolen = await s.fetch(
      TOKEN,
      formPost(
        { grant_type: 'refresh_token', refresh_token: refreshed.refresh_token! },
        { ...client(s), DPoP: await generateProof(other, TOKEN_URL, 'POST') },
      ),
    )
    expect(stolen.status).toBe(400)
    // Neither spent it: the holder of the key still refreshes.
    const still = await s.fetch(
      TOKEN,
      formPost(
        { grant_type: 'refresh_token', refresh_token: refreshed.refresh_token! },
        { ...client(s), DPoP: await generateProof(keyPair as KeyPair, TOKEN_URL, 'POST') },
      ),
    )
    expect(still.status).toBe(200)
  })

  test('refusals at the resource: all 401 with a DPoP challenge, none 5xx', async () => {
    const sc = isolate()
    const key = await generateKeyPair('ES256')
    const other = await generateKeyPair('ES256')
    const { access_token: token } = await boundTokens(sc, key)
    const fresh = (htu = CONTEXT_URL, htm = 'GET', withAth = true, k = key) =>
      generateProof(k, htu, htm, undefined, withAth ? token : undefined)
    const replayed = await fresh()
    expect((await dpopGet(sc, token, replayed)).status).toBe(200)
    // The package always stamps now: an hour-old proof is made by hand, otherwise alike.
    const ath = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(token))
    const old = await new SignJWT({
      jti: crypto.randomUUID(),
      htm: 'GET',
      htu: CONTEXT_URL,
      iat: Math.floor(Date.now() / 1000) - 3600,
      ath: base64url.encode(new Uint8Array(ath)),
    })
      .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: await exportJWK(key.publicKey) })
      .sign(key.privateKey)
    const table: [string, () => Promise<Response>][] = [
      ['replayed proof jti', () => dpopGet(sc, token, replayed)],
      ['wrong htu', async () => dpopGet(sc, token, await fresh(`${BASE_URL}/elsewhere`))],
      ['wrong htm', async () => dpopGet(sc, token, await fresh(CONTEXT_URL, 'POST'))],
      ['missing ath', async () => dpopGet(sc, token, await fresh(CONTEXT_URL, 'GET', false))],
      [
        'proof by another key',
        async () => dpopGet(sc, token, await fresh(CONTEXT_URL, 'GET', true, other)),
      ],
      ['proof too old', () => dpopGet(sc, token, old)],
      ['no proof', () => sc.fetch(CONTEXT, { headers: { Authorization: `DPoP ${token}` } })],
      ['not a JWT', () => dpopGet(sc, token, 'not-a-proof')],
      [
        'bound token downgraded to Bearer',
        () => sc.fetch(CONTEXT, { headers: { Authorization: `Bearer ${token}` } }),
      ],
      ['two proofs', async () => dpopGet(sc, token, `${await fresh()}, ${await fresh()}`)],
    ]
    for (const [name, send] of table) {
      const res = await send()
      const challenge = res.headers.get('www-authenticate') ?? ''
      expect({ name, status: res.status, dpop: /^DPoP /.test(challenge) }).toEqual({
        name,
        status: 401,
        dpop: true,
      })
      expect(challenge).toContain('algs="')
    }
    // The DPoP scheme with a token that is not bound: refused too.
    const plain = await sc.fetch(TOKEN, formPost({ grant_type: 'client_credentials' }, client(sc)))
    const bearerToken = ((await plain.json()) as { access_token: string }).access_token
    const res = await dpopGet(
      sc,
      bearerToken,
      await generateProof(key, CONTEXT_URL, 'GET', undefined, bearerToken),
    )
    expect(res.status).toBe(401)
  })

  test('token endpoint refusals: bad proof, replayed proof; an agent that requires DPoP gets no Bearer token', async () => {
    const sc = isolate()
    const key = await generateKeyPair('ES256')
    const proof = await generateProof(key, TOKEN_URL, 'POST')
    const ask = (dpop?: string, agent = DEMO_AGENT) =>
      sc.fetch(
        TOKEN,
        formPost(
          { grant_type: 'client_credentials' },
          { ...client(sc, agent), ...(dpop ? { DPoP: dpop } : {}) },
        ),
      )
    expect((await ask(proof)).status).toBe(200)
    for (const [name, dpop] of [
      ['replayed', proof],
      ['wrong htu', await generateProof(key, `${BASE_URL}/elsewhere`, 'POST')],
      ['wrong htm', await generateProof(key, TOKEN_URL, 'GET')],
      [
        'with ath at the token endpoint',
        await generateProof(key, TOKEN_URL, 'POST', undefined, 'x'),
      ],
    ] as const) {
      const res = await ask(dpop)
      expect({
        name,
        status: res.status,
        error: ((await res.json()) as { error: string }).error,
      }).toEqual({
        name,
        status: 400,
        error: 'invalid_dpop_proof',
      })
    }
    const strict = `dpop-agent-${randomSecret(4)}`
    await createAgent(sc.db(), { id: strict, ownSecret: false })
    await grantUser(sc.db(), strict, 'demo-user-1')
    await setDpopRequired(sc.db(), strict, true)
    const refused = await ask(undefined, strict)
    expect(refused.status).toBe(400)
    expect(((await refused.json()) as { error: string }).error).toBe('invalid_dpop_proof')
    const bound = await ask(await generateProof(key, TOKEN_URL, 'POST'), strict)
    expect(bound.status).toBe(200)
    expect(((await bound.json()) as { token_type: string }).token_type).toBe('DPoP')
  })

  test('token exchange of a bound token needs a proof by its key, and stays bound', async () => {
    const key = await generateKeyPair('ES256')
    const { access_token: agentToken } = await boundTokens(s, key)
    const fields = {
      grant_type: EXCHANGE,
      subject_token: agentToken,
      subject_token_type: AT,
      requested_subject: 'demo-user-1',
    }
    expect((await s.fetch(TOKEN, formPost(fields))).status).toBe(400)
    const res = await s.fetch(
      TOKEN,
      formPost(fields, { DPoP: await generateProof(key, TOKEN_URL, 'POST') }),
    )
    expect(res.status).toBe(200)
    const delegated = ((await res.json()) as { access_token: string }).access_token
    expect(decodeJwt(delegated).payload.cnf).toEqual({
      jkt: await calculateThumbprint(key.publicKey),
    })
    const proof = await generateProof(key, CONTEXT_URL, 'GET', undefined, delegated)
    expect((await dpopGet(s, delegated, proof)).status).toBe(200)
  })

  test('an agent now required to use DPoP gets no unbound token by exchanging one issued before', async () => {
    const sc = isolate()
    const late = `late-dpop-${randomSecret(4)}`
    await createAgent(sc.db(), { id: late, ownSecret: false })
    await grantUser(sc.db(), late, 'demo-user-1')
    const before = await sc.fetch(
      TOKEN,
      formPost({ grant_type: 'client_credentials' }, client(sc, late)),
    )
    expect(before.status).toBe(200)
    const unbound = ((await before.json()) as { access_token: string }).access_token
    await setDpopRequired(sc.db(), late, true)
    const fields = {
      grant_type: EXCHANGE,
      subject_token: unbound,
      subject_token_type: AT,
      requested_subject: 'demo-user-1',
    }
    const refused = await sc.fetch(TOKEN, formPost(fields))
    expect(refused.status).toBe(400)
    expect(((await refused.json()) as { error: string }).error).toBe('invalid_dpop_proof')
    const key = await generateKeyPair('ES256')
    const bound = await sc.fetch(
      TOKEN,
      formPost(fields, { DPoP: await generateProof(key, TOKEN_URL, 'POST') }),
    )
    expect(bound.status).toBe(200)
    expect(((await bound.json()) as { token_type: string }).token_type).toBe('DPoP')
  })

  test('server nonces (DPOP_NONCE_TTL_SECONDS): asked for, given, then accepted; the SDK and oauth4webapi follow', async () => {
    const sc = isolate({ DPOP_NONCE_TTL_SECONDS: '60' })
    const key = await generateKeyPair('ES256')
    const ask = (proof: string) =>
      sc.fetch(
        TOKEN,
        formPost({ grant_type: 'client_credentials' }, { ...client(sc), DPoP: proof }),
      )
    const first = await ask(await generateProof(key, TOKEN_URL, 'POST'))
    expect(first.status).toBe(400)
    expect(((await first.json()) as { error: string }).error).toBe('use_dpop_nonce')
    const nonce = first.headers.get('dpop-nonce')!
    expect(nonce).toBeTruthy()
    const forged = await ask(await generateProof(key, TOKEN_URL, 'POST', `${nonce}x`))
    expect(forged.status).toBe(400)
    const issued = await ask(await generateProof(key, TOKEN_URL, 'POST', nonce))
    expect(issued.status).toBe(200)
    const token = ((await issued.json()) as { access_token: string }).access_token
    const bare = await dpopGet(
      sc,
      token,
      await generateProof(key, CONTEXT_URL, 'GET', undefined, token),
    )
    expect(bare.status).toBe(401)
    expect(bare.headers.get('www-authenticate')).toContain('error="use_dpop_nonce"')
    const resourceNonce = bare.headers.get('dpop-nonce')!
    const ok = await dpopGet(
      sc,
      token,
      await generateProof(key, CONTEXT_URL, 'GET', resourceNonce, token),
    )
    expect(ok.status).toBe(200)

    // oauth4webapi: its handle keeps the nonce it is given; the first attempt says so.
    const as = await discoverWith(sc)
    const c: oauth.Client = { client_id: DEMO_AGENT }
    const DPoP = oauth.DPoP(c, await oauth.generateKeyPair('ES256'))
    const request = () =>
      oauth.clientCredentialsGrantRequest(
        as,
        c,
        oauth.ClientSecretBasic(agentSecret(sc)),
        {},
        {
          ...peerOptions(sc),
          DPoP,
        },
      )
    const tokens = await oauth
      .processClientCredentialsResponse(as, c, await request())
      .catch(async (err: unknown) => {
        expect(oauth.isDPoPNonceError(err)).toBe(true)
        return oauth.processClientCredentialsResponse(as, c, await request())
      })
    expect(tokens.token_type).toBe('dpop')

    // The SDK retries once with the nonce, at the token endpoint and at the resource.
    const sdk = createAgentClient({
      baseUrl: BASE_URL,
      agentId: DEMO_AGENT,
      agentSecret: agentSecret(sc),
      dpopKey: (await generateKeyPair('ES256')) as CryptoKeyPair,
      fetch: (input, init) => viaRequest(sc, input, init),
    })
    const read = await sdk.getUserContext('demo-user-1')
    expect(read.notModified).toBe(false)
  })

  for (const [label, redis] of [
    ['with Redis', true],
    ['without Redis', false],
  ] as const) {
    test(`the same proof 50× at once (${label}): exactly one accepted`, async () => {
      if (redis && !s.hasRedis) throw new Error('the stack has no Redis')
      const sc = redis
        ? isolate()
        : isolate({ UPSTASH_REDIS_REST_URL: undefined, UPSTASH_REDIS_REST_TOKEN: undefined })
      const key = await generateKeyPair('ES256')
      const { access_token: token } = await boundTokens(sc, key)
      const proof = await generateProof(key, CONTEXT_URL, 'GET', undefined, token)
      const answers = await Promise.all(Array.from({ length: 50 }, () => dpopGet(sc, token, proof)))
      const statuses = answers.map((r) => r.status)
      expect(statuses.filter((st) => st === 200)).toHaveLength(1)
      expect(statuses.filter((st) => st !== 200 && st !== 401)).toEqual([])
    })
  }
})
