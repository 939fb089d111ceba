// Refresh tokens under concurrency and faults, in both runtimes (attack 1: F1, F8, F9): a
// revocation racing a refresh never leaves a working token; concurrent and retried refreshes
// of one token never revoke the family; a grant refused after successful client
// authentication costs no failure budget; a statement timeout, a deadlock or a serialization
// failure is a 503 with Retry-After.
import { describe, expect, test } from 'vitest'
import { revokeAllTokens } from '../../src/auth/agents.ts'
import { hashRefreshToken } from '../../src/auth/refresh-token.ts'
import { sql } from '../../src/db/client.ts'
import {
  agentSecret,
  basic,
  bearer,
  DEMO_AGENT_2,
  formPost,
  getToken,
  jsonPost,
} from '../support/agents.ts'
import { randomSecret, type Scenario, scenario } from '../support/scenario.ts'

const s = await scenario()
const TOKEN = '/api/v1/agent/token'
const REVOKE = '/api/v1/agent/token/revoke'
// demo-agent-2 holds demo-user-3.
const CONTEXT = '/api/v1/agent/users/demo-user-3/context'
const TRIALS = 25

const isolate = (extra: Record<string, string | undefined> = {}) =>
  s.withEnv({ REDIS_KEY_PREFIX: `t:${randomSecret(6)}:`, ISOLATE: randomSecret(4), ...extra })
const client = (sc: Scenario, agent = DEMO_AGENT_2) => ({
  Authorization: basic(agent, agentSecret(sc)),
})

/** A new agent on the shared secret, granted demo-user-3 (so CONTEXT answers it). */
async function newAgent(): Promise<string> {
  const id = `race-${randomSecret(5)}`
  await s
    .db()
    .transaction([
      sql`INSERT INTO agents (id, allowed_scopes) VALUES (${id}, '{context:read,progress:write}')`,
      sql`INSERT INTO agent_user_grants (agent_id, user_id) VALUES (${id}, 'demo-user-3')`,
    ])
  return id
}
let address = 0
/** Each request from its own address: budgets are not what these tests are about. */
const from = (sc: Scenario) =>
  sc.from(`10.61.${Math.floor(address / 250) % 250}.${address++ % 250}`)
const refresh = (sc: Scenario, token: string, agent = DEMO_AGENT_2) =>
  sc.fetch(
    TOKEN,
    formPost(
      { grant_type: 'refresh_token', refresh_token: token },
      { ...client(sc, agent), ...from(sc) },
    ),
  )

/** Whether anything of the family still works: its successor rotates, or yields a token. */
async function survives(
  sc: Scenario,
  answer: Response,
  agent = DEMO_AGENT_2,
): Promise<string | undefined> {
  if (answer.status !== 200) return undefined
  const body = (await answer.json()) as { refresh_token: string; access_token: string }
  const again = await refresh(sc, body.refresh_token, agent)
  if (again.status === 200) return 'its successor refresh token rotated'
  const use = await sc.fetch(CONTEXT, { headers: bearer(body.access_token) })
  if (use.status === 200) return 'its access token worked'
  return undefined
}

describe(`revocation racing a refresh (${s.runtime})`, () => {
  test(`RFC 7009 revoke and refresh of one token sent at once: nothing survives a 200 (${TRIALS} trials)`, async () => {
    const iso = isolate()
    const survivors: string[] = []
    let raced = 0
    for (let i = 0; i < TRIALS; i++) {
      const issued = await getToken(iso, DEMO_AGENT_2)
      const [revoked, refreshed] = await Promise.all([
        iso.fetch(
          REVOKE,
          formPost({ token: issued.refresh_token }, { ...client(iso), ...from(iso) }),
        ),
        refresh(iso, issued.refresh_token),
      ])
      expect(revoked.status).toBe(200)
      expect([200, 400]).toContain(refreshed.status)
      if (refreshed.status === 200) raced++
      const survivor = await survives(iso, refreshed)
      if (survivor) survivors.push(`trial ${i}: ${survivor}`)
    }
    console.info(
      `[races] ${s.runtime} | revoke vs refresh | refresh also 200 in ${raced}/${TRIALS}`,
    )
    expect(survivors).toEqual([])
  }, 120_000)

  test(`revoke-tokens (the operators' CLI) racing a refresh: nothing issued before it survives (${TRIALS} trials)`, async () => {
    const iso = isolate({ GRANT_CACHE_TTL_MS: '0' })
    const survivors: string[] = []
    for (let i = 0; i < TRIALS; i++) {
      const agent = await newAgent()
      const issued = await getToken(iso, agent)
      const [, refreshed] = await Promise.all([
        new Promise((r) => setTimeout(r, i % 5)).then(() => revokeAllTokens(s.db(), agent)),
        refresh(iso, issued.refresh_token, agent),
      ])
      const survivor = await survives(iso, refreshed, agent)
      if (survivor) survivors.push(`trial ${i}: ${survivor}`)
      // And a token asked for afterwards works at once.
      const fresh = await getToken(iso, agent)
      expect((await iso.fetch(CONTEXT, { headers: bearer(fresh.access_token) })).status).toBe(200)
    }
    expect(survivors).toEqual([])
  }, 120_000)

  test('revoke-tokens takes the database’s clock, not the operator machine’s', async () => {
    const agent = await newAgent()
    const before = await getToken(s, agent)
    await revokeAllTokens(s.db(), agent)
    const rows = await s.db().query<{ skew_ms: string }>(
      sql`SELECT (extract(epoch FROM now() - tokens_not_before) * 1000)::bigint AS skew_ms
          FROM agents WHERE id = ${agent}`,
    )
    // Set by the database a moment ago (the CLI passes no time of its own any more).
    expect(Math.abs(Number(rows[0]?.skew_ms))).toBeLessThan(5_000)
    expect((await refresh(s, before.refresh_token, agent)).status).toBe(400)
  })

  test('two agent-wide revocations within one second: a token issued between them is refused', async () => {
    const iso = isolate({ GRANT_CACHE_TTL_MS: '0' })
    const agent = await newAgent()
    await revokeAllTokens(s.db(), agent)
    // Issued after the first (its iat rounded up past it), before the second.
    const between = await getToken(iso, agent)
    expect((await iso.fetch(CONTEXT, { headers: bearer(between.access_token) })).status).toBe(200)
    await revokeAllTokens(s.db(), agent)
    expect((await iso.fetch(CONTEXT, { headers: bearer(between.access_token) })).status).toBe(401)
    const after = await getToken(iso, agent)
    expect((await iso.fetch(CONTEXT, { headers: bearer(after.access_token) })).status).toBe(200)
  })
})

describe(`concurrent and retried refreshes (${s.runtime})`, () => {
  test('40 concurrent refreshes of one token: all answered, no 5xx, the family lives on', async () => {
    const iso = isolate()
    const issued = await getToken(iso, DEMO_AGENT_2)
    const answers = await Promise.all(
      Array.from({ length: 40 }, () => refresh(iso, issued.refresh_token)),
    )
    const statuses = answers.map((r) => r.status)
    expect(statuses.filter((st) => st >= 500)).toEqual([])
    expect(statuses.every((st) => st === 200)).toBe(true)
    const bodies = (await Promise.all(answers.map((r) => r.json()))) as {
      access_token: string
      refresh_token: string
    }[]
    // Every access token handed out works (the family was never revoked) …
    for (const body of bodies.slice(0, 5)) {
      expect((await iso.fetch(CONTEXT, { headers: bearer(body.access_token) })).status).toBe(200)
    }
    // … and exactly one refresh token is live: the family's.
    const live = await s.db().query<{ n: number }>(
      sql`SELECT count(*)::int AS n FROM refresh_tokens t
          JOIN refresh_token_families f ON f.id = t.family_id
          WHERE t.family_id = (SELECT family_id FROM refresh_tokens
                               WHERE token_hash = ${await hashRefreshToken(issued.refresh_token)})
            AND t.spent_at IS NULL AND t.retired_at IS NULL AND f.revoked_at IS NULL`,
    )
    expect(live[0]?.n).toBe(1)
  })

  test('a lost answer retried within the grace period gets a fresh pair; the lost one is retired', async () => {
    const iso = isolate()
    const issued = await getToken(iso, DEMO_AGENT_2)
    const lost = await (await refresh(iso, issued.refresh_token)).json()
    const retried = await refresh(iso, issued.refresh_token)
    expect(retried.status).toBe(200)
    const kept = await retried.json()
    expect((await iso.fetch(CONTEXT, { headers: bearer(kept.access_token) })).status).toBe(200)
    expect((await refresh(iso, kept.refresh_token)).status).toBe(200)
    // Once the successor has been used, the old token and the retired one are reuse: the
    // family dies, its access tokens too.
    expect((await refresh(iso, lost.refresh_token)).status).toBe(400)
    expect((await iso.fetch(CONTEXT, { headers: bearer(kept.access_token) })).status).toBe(401)
  })

  test('introspection says of a retired sibling what a refresh would do: active while its live sibling is unused, then not', async () => {
    const iso = isolate()
    const issued = await getToken(iso, DEMO_AGENT_2)
    const retired = await (await refresh(iso, issued.refresh_token)).json()
    const live = await (await refresh(iso, issued.refresh_token)).json()
    const active = async (token: string) => {
      const res = await iso.fetch(
        '/api/v1/agent/token/introspect',
        formPost({ token }, { ...client(iso), ...from(iso) }),
      )
      expect(res.status).toBe(200)
      return ((await res.json()) as { active: boolean }).active
    }
    expect([await active(retired.refresh_token), await active(live.refresh_token)]).toEqual([
      true,
      true,
    ])
    expect((await refresh(iso, live.refresh_token)).status).toBe(200)
    expect([await active(retired.refresh_token), await active(live.refresh_token)]).toEqual([
      false,
      false,
    ])
    expect((await refresh(iso, retired.refresh_token)).status).toBe(400)
  })

  test('with REFRESH_REUSE_GRACE_SECONDS=0 any re-use revokes the family', async () => {
    const iso = isolate({ REFRESH_REUSE_GRACE_SECONDS: '0' })
    const issued = await getToken(iso, DEMO_AGENT_2)
    const next = await (await refresh(iso, issued.refresh_token)).json()
    expect((await refresh(iso, issued.refresh_token)).status).toBe(400)
    expect((await refresh(iso, next.refresh_token)).status).toBe(400)
  })

  test('the grace period ends: re-use after it revokes the family', async () => {
    const iso = isolate()
    const issued = await getToken(iso, DEMO_AGENT_2)
    const next = await (await refresh(iso, issued.refresh_token)).json()
    // Its first use, 61 s ago (the default grace is 60 s).
    await s.db().query(
      sql`UPDATE refresh_tokens SET spent_at = spent_at - interval '61 seconds'
          WHERE token_hash = ${await hashRefreshToken(issued.refresh_token)}`,
    )
    expect((await refresh(iso, issued.refresh_token)).status).toBe(400)
    expect((await refresh(iso, next.refresh_token)).status).toBe(400)
  })

  test('refused grants after successful client authentication spend no failure budget', async () => {
    const iso = isolate({ RATE_LIMIT_TOKEN_FAILURES_PER_AGENT: '3' })
    const here = iso.from('192.0.2.77')
    // Ten refusals of an authenticated client: unknown refresh tokens, a scope it lacks.
    for (let i = 0; i < 10; i++) {
      const res = await iso.fetch(
        TOKEN,
        formPost(
          i % 2
            ? { grant_type: 'refresh_token', refresh_token: `rt_${'x'.repeat(43)}` }
            : { grant_type: 'client_credentials', scope: 'admin' },
          { ...client(iso), ...here },
        ),
      )
      expect(res.status).toBe(400)
    }
    const ok = await iso.fetch(
      TOKEN,
      jsonPost({ agent_id: DEMO_AGENT_2, agent_secret: agentSecret(iso) }, here),
    )
    expect(ok.status).toBe(200)
    // Wrong credentials still count: the fourth guess is refused by the budget.
    const guesses = []
    for (let i = 0; i < 4; i++) {
      guesses.push(
        (
          await iso.fetch(
            TOKEN,
            jsonPost({ agent_id: DEMO_AGENT_2, agent_secret: `guess-${i}` }, here),
          )
        ).status,
      )
    }
    expect(guesses).toEqual([401, 401, 401, 429])
  })
})

describe(`transient database conditions on the token path (${s.runtime})`, () => {
  test.each([
    ['57014', 'statement timeout'],
    ['40P01', 'deadlock detected'],
    ['40001', 'could not serialize access'],
  ])('SQLSTATE %s (%s) → 503 + Retry-After, never a 500', async (code, text) => {
    const db = s.db()
    const fn = `raise_${code.toLowerCase()}`
    await db.query({
      text: `CREATE OR REPLACE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION '${text}' USING ERRCODE = '${code}'; END $$`,
      params: [],
    })
    await db.query({
      text: `CREATE TRIGGER ${fn} BEFORE INSERT ON refresh_tokens FOR EACH ROW
             WHEN (NEW.agent_id = 'demo-agent-2') EXECUTE FUNCTION ${fn}()`,
      params: [],
    })
    try {
      const iso = isolate()
      const res = await iso.fetch(
        TOKEN,
        jsonPost({ agent_id: DEMO_AGENT_2, agent_secret: agentSecret(iso) }, from(iso)),
      )
      expect(res.status).toBe(503)
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0)
      expect(await res.json()).toMatchObject({
        code: 'database_unavailable',
        error: 'temporarily_unavailable',
      })
    } finally {
      await db.query({ text: `DROP TRIGGER ${fn} ON refresh_tokens`, params: [] })
    }
  })
})

describe(`token-store writes that land after the client gave up (${s.runtime})`, () => {
  /** Runs `work` while writes of `table` for `agent` take 1.2 s (the timeout is 400 ms). */
  async function slowWrites<T>(
    table: 'refresh_tokens' | 'refresh_token_families',
    agent: string,
    work: () => Promise<T>,
  ): Promise<T> {
    const db = s.db()
    const fn = `slow_${table}`
    await db.query({
      text: `CREATE OR REPLACE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN PERFORM pg_sleep(1.2); RETURN NEW; END $$`,
      params: [],
    })
    await db.query({
      text: `CREATE TRIGGER ${fn} BEFORE INSERT OR UPDATE ON ${table} FOR EACH ROW
             WHEN (NEW.agent_id = '${agent}') EXECUTE FUNCTION ${fn}()`,
      params: [],
    })
    try {
      return await work()
    } finally {
      await db.query({ text: `DROP TRIGGER ${fn} ON ${table}`, params: [] })
    }
  }
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
  /** A new agent's first refresh token, in an isolate that gives the database 400 ms. */
  async function freshPair(extra: Record<string, string> = {}) {
    const agent = await newAgent()
    const iso = isolate({
      DATABASE_TIMEOUT_MS: '400',
      BREAKER_CONSECUTIVE_FAILURES: '1000',
      BREAKER_FAILURE_RATE_PERCENT: '100',
      ...extra,
    })
    const first = await iso.fetch(
      TOKEN,
      jsonPost({ agent_id: agent, agent_secret: agentSecret(iso) }, from(iso)),
    )
    const { refresh_token: r0 } = (await first.json()) as { refresh_token: string }
    return { agent, iso, r0 }
  }

  test('a refresh rotated after the timeout: 503 outcome_unknown; the same token again within the grace period gets a pair', async () => {
    const { agent, iso, r0 } = await freshPair()
    const answer = await slowWrites('refresh_tokens', agent, async () => {
      const res = await refresh(iso, r0, agent)
      const body = (await res.json()) as Record<string, string>
      await sleep(1500) // the rotation lands meanwhile
      return { status: res.status, retryAfter: res.headers.get('retry-after'), body }
    })
    expect(answer).toMatchObject({
      status: 503,
      retryAfter: '5',
      body: { code: 'outcome_unknown', error: 'temporarily_unavailable' },
    })
    expect(answer.body.detail).toMatch(/same refresh token within 60 s/)
    // It did rotate: r0 is spent, and presenting it again (within the grace) gets a fresh pair.
    const again = await refresh(iso, r0, agent)
    expect(again.status).toBe(200)
    const tokens = (await again.json()) as { access_token: string; refresh_token: string }
    expect((await iso.fetch(CONTEXT, { headers: bearer(tokens.access_token) })).status).toBe(200)
    expect((await refresh(iso, tokens.refresh_token, agent)).status).toBe(200)
  })

  test('a refresh-token revocation made after the timeout: 503 outcome_unknown, never "nothing was revoked"', async () => {
    const { agent, iso, r0 } = await freshPair()
    const answer = await slowWrites('refresh_token_families', agent, async () => {
      const res = await iso.fetch(
        REVOKE,
        formPost({ token: r0 }, { ...client(iso, agent), ...from(iso) }),
      )
      const body = (await res.json()) as Record<string, string>
      await sleep(1500)
      return { status: res.status, body }
    })
    expect(answer).toMatchObject({
      status: 503,
      body: { code: 'outcome_unknown', error: 'temporarily_unavailable' },
    })
    // It did land: the token no longer refreshes.
    expect((await refresh(iso, r0, agent)).status).toBe(400)
  })

  test('with no grace period, the outcome_unknown of a refresh says to ask anew, not to present the token again', async () => {
    const { agent, iso, r0 } = await freshPair({ REFRESH_REUSE_GRACE_SECONDS: '0' })
    const body = await slowWrites('refresh_tokens', agent, async () => {
      const res = await refresh(iso, r0, agent)
      await sleep(1500)
      return (await res.json()) as Record<string, string>
    })
    expect(body).toMatchObject({ code: 'outcome_unknown' })
    expect(body.detail).toMatch(/client credentials/)
    expect(body.detail).not.toMatch(/same refresh token/)
  })
})
