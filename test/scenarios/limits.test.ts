// Limits under concurrency, in both runtimes, with Redis, without it, and with Redis failing:
// N requests sent at once count as N (CONTRACT.md "Rate limits"). Each burst prints its
// figures (sent / checked / allowed) as a `[burst]` line.
import { describe, expect, test } from 'vitest'
import { agentSecret, bearer, DEMO_AGENT, formPost, getToken, jsonPost } from '../support/agents.ts'
import { randomSecret, type Scenario, scenario } from '../support/scenario.ts'

const s = await scenario()
const TOKEN = '/api/v1/agent/token'
const secret = agentSecret(s)
// Day-long windows: no burst straddles a window boundary, so the counts are exact.
const DAY = '86400'

type Mode = 'redis' | 'no redis' | 'redis failing'
const MODES: Mode[] = s.hasRedis ? ['redis', 'no redis', 'redis failing'] : ['no redis']

/** A fresh isolate (its own services and Redis prefix) in `mode`. */
function isolate(mode: Mode, extra: Record<string, string> = {}): Scenario {
  const vars = {
    REDIS_KEY_PREFIX: `t:${randomSecret(6)}:`,
    RATE_LIMIT_TOKEN_WINDOW_SECONDS: DAY,
    RATE_LIMIT_REQUESTS_WINDOW_SECONDS: DAY,
    // A Redis call past its timeout falls back to the isolate's own window (the documented
    // degraded mode, tested with Redis failing); on a loaded machine the default 1 s is missed
    // by some of 150 calls, and these exact counts are about Redis answering.
    REDIS_TIMEOUT_MS: '15000',
    ISOLATE: randomSecret(4),
    ...extra,
  }
  return mode === 'no redis'
    ? s.withEnv({ ...vars, UPSTASH_REDIS_REST_URL: undefined, UPSTASH_REDIS_REST_TOKEN: undefined })
    : s.withEnv(vars)
}

/** Runs `work` with Redis refusing connections when the mode says so. */
async function inMode<T>(mode: Mode, work: () => Promise<T>): Promise<T> {
  if (mode !== 'redis failing') return work()
  await s.redis.setFaults({ refuse: true })
  try {
    return await work()
  } finally {
    await s.redis.clearFaults()
  }
}

function tally(responses: Response[]): Record<number, number> {
  const counts: Record<number, number> = {}
  for (const r of responses) counts[r.status] = (counts[r.status] ?? 0) + 1
  return counts
}

function report(label: string, mode: Mode, figures: Record<string, number>) {
  const text = Object.entries(figures)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ')
  console.info(`[burst] ${s.runtime} | ${mode} | ${label} | ${text}`)
}

/** A command to the scenario's Redis, through the Upstash stand-in (its REST API). */
async function redisCommand(iso: Scenario, ...command: string[]): Promise<unknown> {
  const res = await fetch(iso.env.UPSTASH_REDIS_REST_URL!, {
    method: 'POST',
    headers: { Authorization: `Bearer ${iso.env.UPSTASH_REDIS_REST_TOKEN}` },
    body: JSON.stringify(command),
  })
  expect(res.ok).toBe(true)
  return ((await res.json()) as { result: unknown }).result
}

/** The Redis key prefix of an agent's request-limit windows (the library appends the window). */
const requestLimitKey = (iso: Scenario, agentId: string) =>
  `${iso.env.REDIS_KEY_PREFIX}ratelimit:requests-agent:${agentId}`

/** What Redis counted against the agent's request limit (all windows of this prefix). */
async function redisCounted(iso: Scenario, agentId: string): Promise<number> {
  const keys = (await redisCommand(iso, 'KEYS', `${requestLimitKey(iso, agentId)}:*`)) as string[]
  let total = 0
  for (const key of keys) total += Number(await redisCommand(iso, 'GET', key))
  return total
}

const CONTEXT = '/api/v1/agent/users/demo-user-1/context'
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
/** Until `into` ms into the next window of `windowMs` (the library's windows follow the wall clock). */
const nextWindow = (windowMs: number, into = 300) =>
  sleep(windowMs - (Date.now() % windowMs) + into)

/** An isolate with Redis, and demo-agent's context reads through it: one, or `n` at once. */
async function readsWithRedis(extra: Record<string, string>) {
  const iso = isolate('redis', extra)
  const auth = bearer((await getToken(iso)).access_token)
  const read = () => iso.fetch(CONTEXT, { headers: auth })
  return { iso, read, burst: (n: number) => Promise.all(Array.from({ length: n }, read)) }
}

/** Sets Redis's count of demo-agent's requests in the window `offset` windows from now's. */
async function setRequestCount(iso: Scenario, windowMs: number, offset: number, count: number) {
  const window = Math.floor(Date.now() / windowMs) + offset
  await redisCommand(
    iso,
    'SET',
    `${requestLimitKey(iso, DEMO_AGENT)}:${window}`,
    String(count),
    'PX',
    '60000',
  )
}

describe.each(MODES)(`failure budgets under bursts (${s.runtime}, %s)`, (mode) => {
  test('60 wrong secrets for one agent from one address at once: exactly 10 are checked', async () => {
    const iso = isolate(mode)
    const from = s.from('198.51.100.60')
    await s.neon.resetStats()
    const responses = await inMode(mode, () =>
      Promise.all(
        Array.from({ length: 60 }, (_, i) =>
          iso.fetch(TOKEN, jsonPost({ agent_id: DEMO_AGENT, agent_secret: `wrong-${i}` }, from)),
        ),
      ),
    )
    const counts = tally(responses)
    const checked = (await s.neon.stats()).requests
    report('60 wrong secrets, one (agent, address), limit 10', mode, {
      sent: 60,
      checked,
      allowed: counts[200] ?? 0,
      401: counts[401] ?? 0,
      429: counts[429] ?? 0,
    })
    expect(counts).toEqual({ 401: 10, 429: 50 })
    expect(checked).toBe(10) // one agent lookup per checked attempt, none for the refused
    for (const r of responses.filter((x) => x.status === 429)) {
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0)
    }
    // The right secret from there is refused too now; from elsewhere it works.
    const locked = await inMode(mode, () =>
      iso.fetch(TOKEN, jsonPost({ agent_id: DEMO_AGENT, agent_secret: secret }, from)),
    )
    expect(locked.status).toBe(429)
    // Nothing in flight now: the budget is spent by failures, until the window's reset.
    expect(Number(locked.headers.get('retry-after'))).toBeGreaterThan(1)
    expect(((await locked.json()) as { detail: string }).detail).toMatch(/failed attempts/)
    const elsewhere = await inMode(mode, () =>
      iso.fetch(
        TOKEN,
        jsonPost({ agent_id: DEMO_AGENT, agent_secret: secret }, s.from('198.51.100.61')),
      ),
    )
    expect(elsewhere.status).toBe(200)
  })

  test('150 wrong secrets across 150 agent ids from one address at once: exactly 100 are checked', async () => {
    const iso = isolate(mode)
    const from = s.from('198.51.100.150')
    await s.neon.resetStats()
    const responses = await inMode(mode, () =>
      Promise.all(
        Array.from({ length: 150 }, (_, i) =>
          iso.fetch(TOKEN, jsonPost({ agent_id: `guess-agent-${i}`, agent_secret: 'x' }, from)),
        ),
      ),
    )
    const counts = tally(responses)
    const checked = (await s.neon.stats()).requests
    report('150 wrong secrets, one address, limit 100', mode, {
      sent: 150,
      checked,
      allowed: counts[200] ?? 0,
      401: counts[401] ?? 0,
      429: counts[429] ?? 0,
    })
    expect(counts).toEqual({ 401: 100, 429: 50 })
    expect(checked).toBe(100)
  })

  test('40 correct secrets of one agent from one address at once: the refused are told to retry in a second, and get their tokens', async () => {
    const iso = isolate(mode)
    const from = s.from('198.51.100.40')
    const ask = () =>
      iso.fetch(TOKEN, jsonPost({ agent_id: DEMO_AGENT, agent_secret: secret }, from))
    let waiting = 40
    let rounds = 0
    const first = await inMode(mode, () => Promise.all(Array.from({ length: waiting }, ask)))
    report('40 correct secrets, one (agent, address), limit 10', mode, tally(first))
    expect(first.filter((r) => r.status === 200).length).toBeGreaterThanOrEqual(10)
    let answers = first
    while (waiting > 0) {
      rounds++
      for (const r of answers.filter((x) => x.status !== 200)) {
        expect(r.status).toBe(429)
        expect(r.headers.get('retry-after')).toBe('1')
        expect(((await r.json()) as { detail: string }).detail).toMatch(/at once/)
      }
      waiting = answers.filter((x) => x.status !== 200).length
      if (waiting === 0) break
      expect(rounds).toBeLessThanOrEqual(4) // 40 through a budget of 10 in flight
      answers = await inMode(mode, () => Promise.all(Array.from({ length: waiting }, ask)))
    }
    // Every count was given back: the agent is not locked out.
    const after = await inMode(mode, ask)
    expect(after.status).toBe(200)
    expect(after.headers.get('ratelimit-remaining')).toBe('9')
  })

  test('a success gives its count back: successes never lock an agent out', async () => {
    const iso = isolate(mode)
    const from = s.from('198.51.100.12')
    await inMode(mode, async () => {
      for (let i = 0; i < 12; i++) {
        const ok = await iso.fetch(
          TOKEN,
          jsonPost({ agent_id: DEMO_AGENT, agent_secret: secret }, from),
        )
        expect(ok.status).toBe(200)
        expect(ok.headers.get('ratelimit-remaining')).toBe('9') // this attempt, counted
      }
      for (let i = 0; i < 10; i++) {
        const wrong = await iso.fetch(
          TOKEN,
          jsonPost({ agent_id: DEMO_AGENT, agent_secret: 'wrong' }, from),
        )
        expect(wrong.status).toBe(401)
        expect(wrong.headers.get('ratelimit-remaining')).toBe(String(9 - i))
      }
      const locked = await iso.fetch(
        TOKEN,
        jsonPost({ agent_id: DEMO_AGENT, agent_secret: secret }, from),
      )
      expect(locked.status).toBe(429)
    })
  })

  test('the flush route: 60 wrong cron secrets at once, exactly 10 checked', async () => {
    const iso = isolate(mode)
    const from = s.from('198.51.100.77')
    const responses = await inMode(mode, () =>
      Promise.all(
        Array.from({ length: 60 }, (_, i) =>
          iso.fetch('/api/v1/internal/flush', {
            method: 'POST',
            headers: { Authorization: `Bearer wrong-${i}`, ...from },
          }),
        ),
      ),
    )
    const counts = tally(responses)
    report('60 wrong cron secrets, one address, limit 10', mode, {
      sent: 60,
      checked: counts[401] ?? 0,
      allowed: counts[200] ?? 0,
      401: counts[401] ?? 0,
      429: counts[429] ?? 0,
    })
    expect(counts).toEqual({ 401: 10, 429: 50 })
  })
})

describe.runIf(s.hasRedis)(
  `the per-agent request limit across a Redis failure (${s.runtime})`,
  () => {
    test('Redis failing mid-window: the isolate’s fallback starts from Redis’s count, not from zero', async () => {
      // The revocation answer from before the failure is trusted through it (see prepare below).
      const { burst } = await readsWithRedis({
        RATE_LIMIT_REQUESTS_PER_AGENT: '50',
        REVOCATION_CHECK_TTL_MS: '60000',
      })
      const before = tally(await burst(70))
      const during = tally(await inMode('redis failing', () => burst(70)))
      report('70 at once, Redis up, then 70 with Redis failing, limit 50', 'redis failing', {
        before: before[200] ?? 0,
        during: during[200] ?? 0,
      })
      expect(before).toEqual({ 200: 50, 429: 20 })
      expect(during).toEqual({ 429: 70 })
    })

    test('Redis failing just after a window ends: the window before still weighs, as in Redis', async () => {
      const windowMs = 10_000
      const { burst } = await readsWithRedis({
        RATE_LIMIT_REQUESTS_PER_AGENT: '50',
        RATE_LIMIT_REQUESTS_WINDOW_SECONDS: String(windowMs / 1000),
        REVOCATION_CHECK_TTL_MS: '60000',
      })
      // The first burst well inside a window …
      if (windowMs - (Date.now() % windowMs) < 4000) await nextWindow(windowMs, 0)
      const before = tally(await burst(50))
      // … the second just after it ended: that window still weighs about 48 of the 50.
      await nextWindow(windowMs)
      const during = tally(await inMode('redis failing', () => burst(60)))
      report(
        '50 in a window, then 60 with Redis failing just after it, limit 50',
        'redis failing',
        {
          before: before[200] ?? 0,
          during: during[200] ?? 0,
        },
      )
      expect(before).toEqual({ 200: 50 })
      // Redis itself would allow what the old window no longer weighs (a few), never 50.
      expect(during[200] ?? 0).toBeLessThanOrEqual(10)
    }, 30_000)

    test('Redis failing never refuses what Redis would allow: the window before weighs only what it held', async () => {
      const windowMs = 5_000
      const { burst } = await readsWithRedis({
        RATE_LIMIT_REQUESTS_PER_AGENT: '50',
        RATE_LIMIT_REQUESTS_WINDOW_SECONDS: String(windowMs / 1000),
        REVOCATION_CHECK_TTL_MS: '60000',
      })
      await nextWindow(windowMs)
      const first = tally(await burst(50)) // a full window …
      await nextWindow(windowMs)
      const second = tally(await burst(1)) // … then one request in the next …
      await nextWindow(windowMs)
      // … and in the one after, Redis weighs only that one request: all 20 go through.
      const during = tally(await inMode('redis failing', () => burst(20)))
      report(
        '50, a window later 1, a window later 20 with Redis failing, limit 50',
        'redis failing',
        {
          during: during[200] ?? 0,
        },
      )
      expect({ first, second, during }).toEqual({
        first: { 200: 50 },
        second: { 200: 1 },
        during: { 200: 20 },
      })
    }, 30_000)
  },
)

describe.runIf(s.hasRedis)(`leases at a window's start (${s.runtime})`, () => {
  const windowMs = 10_000
  const window = { RATE_LIMIT_REQUESTS_WINDOW_SECONDS: String(windowMs / 1000) }

  test('the window before still weighing near the limit: no lease is asked before this window’s count is known, so none is counted and refused', async () => {
    const { iso, read } = await readsWithRedis(window)
    await nextWindow(windowMs)
    // The window before held 612 (say, from other isolates): 0.3 s in, it weighs 593 of 600.
    await setRequestCount(iso, windowMs, -1, 612)
    const statuses: number[] = []
    for (let i = 0; i < 5; i++) statuses.push((await read()).status)
    // Redis has room for these 5 (a lease of 10 would not fit, and would be counted anyway).
    expect(statuses).toEqual([200, 200, 200, 200, 200])
  }, 30_000)

  test('near the limit, a burst spends the lease one of its requests took: every unit Redis had is served', async () => {
    const { iso, read, burst } = await readsWithRedis(window)
    await nextWindow(windowMs)
    await setRequestCount(iso, windowMs, 0, 579)
    // One request learns the window's count (20 left after it) …
    expect((await read()).headers.get('ratelimit-remaining')).toBe('20')
    // … then 60 at once: one takes a lease of 10, the others one unit each until Redis says no,
    // and those refused spend what is left of the lease.
    const counts = tally(await burst(60))
    report('60 at once with 20 left (lease 10)', 'redis', { allowed: counts[200] ?? 0 })
    expect(counts).toEqual({ 200: 20, 429: 40 })
  }, 30_000)

  test('RateLimit-Remaining follows the window as the window before weighs less, not its first low answer', async () => {
    const { iso, read } = await readsWithRedis(window)
    await nextWindow(windowMs)
    await setRequestCount(iso, windowMs, -1, 600)
    const remaining = async () => Number((await read()).headers.get('ratelimit-remaining'))
    // 0.3 s in, the full window before weighs about 582: under 20 left.
    const early = await remaining()
    await sleep(3000)
    // 3 s later it weighs about 400: Redis's answer to a later call says so.
    const later = await remaining()
    report('Remaining 0.3 s and 3.3 s into a window after a full one', 'redis', { early, later })
    expect(early).toBeLessThan(20)
    expect(later).toBeGreaterThan(150)
  }, 30_000)
})

describe.each(MODES)(`the per-agent request limit under bursts (${s.runtime}, %s)`, (mode) => {
  const context = '/api/v1/agent/users/demo-user-1/context'

  /**
   * An isolate and a token for `mode`. With Redis failing, every request of a burst that finds no
   * recent revocation answer asks Postgres at once, within the check's 1 s deadline; on a loaded
   * machine some of 150 miss it and answer 503 auth_unavailable, as they should. These tests are
   * about the request limit, so there `warm()`, called first inside the fault, makes one request
   * (`spent`: 1) whose "not revoked" answer from Postgres the isolate trusts for the whole test.
   */
  async function prepare(extra: Record<string, string> = {}) {
    const failing = mode === 'redis failing'
    // A day-long window: a test that crossed a minute boundary on a slow machine would see the
    // sliding window discount what it spent before it (seen once: Remaining 152 too high).
    const settings = { RATE_LIMIT_REQUESTS_WINDOW_SECONDS: '86400', ...extra }
    const iso = isolate(
      mode,
      failing ? { ...settings, REVOCATION_CHECK_TTL_MS: '60000' } : settings,
    )
    const auth = bearer((await getToken(iso)).access_token)
    const warm = async () => {
      if (failing) expect((await iso.fetch(context, { headers: auth })).status).toBe(200)
    }
    return { iso, auth, spent: failing ? 1 : 0, warm }
  }

  test('60 requests at once spend about 60 of 600, not the whole budget', async () => {
    const { iso, auth, spent, warm } = await prepare()
    const responses = await inMode(mode, async () => {
      await warm()
      return Promise.all(Array.from({ length: 60 }, () => iso.fetch(context, { headers: auth })))
    })
    expect(tally(responses)).toEqual({ 200: 60 })
    // The 61st to 70th requests of the window (the 70th was refused before).
    const more = await inMode(mode, async () => {
      const out: Response[] = []
      for (let i = 0; i < 10; i++) out.push(await iso.fetch(context, { headers: auth }))
      return out
    })
    expect(tally(more)).toEqual({ 200: 10 })
    const remaining = Number(more.at(-1)!.headers.get('ratelimit-remaining'))
    const counted = mode === 'redis' ? await redisCounted(iso, DEMO_AGENT) : 600 - remaining - spent
    report('60 at once then 10, limit 600 (lease 10)', mode, {
      sent: 70,
      allowed: 70,
      counted,
      remaining,
    })
    if (mode === 'redis') {
      // One lease (10 units) for the one lease request in flight, one unit per other request.
      expect(counted).toBeGreaterThanOrEqual(70)
      expect(counted).toBeLessThanOrEqual(70 + 9)
    } else {
      expect(remaining).toBe(600 - 70 - spent)
    }
  })

  test('RateLimit-Remaining after a burst counts every request, within the lease bound', async () => {
    const { iso, auth, spent, warm } = await prepare() // 600 a window, leases of 10
    const remaining = (r: Response) => Number(r.headers.get('ratelimit-remaining'))
    const { burst, after } = await inMode(mode, async () => {
      await warm()
      const burst = await Promise.all(
        Array.from({ length: 150 }, () => iso.fetch(context, { headers: auth })),
      )
      const after: Response[] = []
      for (let i = 0; i < 25; i++) after.push(await iso.fetch(context, { headers: auth }))
      return { burst, after }
    })
    expect(tally([...burst, ...after])).toEqual({ 200: 175 })
    // One isolate holds at most lease − 1 = 9 units it has not spent: what it says is within 9
    // of the truth (600 minus the requests made), and never above it.
    const off = after.map((r, i) => 600 - (spent + 150 + i + 1) - remaining(r))
    report('Remaining after 150 at once, then 25 one by one (lease 10)', mode, {
      first: remaining(after[0]!),
      last: remaining(after.at(-1)!),
      worst: Math.max(...off.map(Math.abs)),
    })
    for (const d of off) {
      expect(d).toBeGreaterThanOrEqual(0)
      expect(d).toBeLessThanOrEqual(9)
    }
    for (const r of burst) expect(remaining(r)).toBeLessThanOrEqual(599)
  })

  test('150 at once against a limit of 100: exactly 100 allowed', async () => {
    const { iso, auth, spent, warm } = await prepare({ RATE_LIMIT_REQUESTS_PER_AGENT: '100' }) // lease of 1
    const responses = await inMode(mode, async () => {
      await warm()
      return Promise.all(Array.from({ length: 150 }, () => iso.fetch(context, { headers: auth })))
    })
    const counts = tally(responses)
    report('150 at once, limit 100 (no lease)', mode, {
      sent: 150,
      allowed: counts[200] ?? 0,
      429: counts[429] ?? 0,
    })
    expect(counts).toEqual({ 200: 100 - spent, 429: 50 + spent })
  })

  test('150 at once against a leased limit of 120: never more than 120, at most a lease short', async () => {
    const { iso, auth, spent, warm } = await prepare({ RATE_LIMIT_REQUESTS_PER_AGENT: '120' }) // lease of 2
    const responses = await inMode(mode, async () => {
      await warm()
      return Promise.all(Array.from({ length: 150 }, () => iso.fetch(context, { headers: auth })))
    })
    const counts = tally(responses)
    report('150 at once, limit 120 (lease 2)', mode, {
      sent: 150,
      allowed: counts[200] ?? 0,
      429: counts[429] ?? 0,
    })
    expect((counts[200] ?? 0) + (counts[429] ?? 0)).toBe(150)
    expect(counts[200]).toBeLessThanOrEqual(120 - spent)
    expect(counts[200]).toBeGreaterThanOrEqual((mode === 'redis' ? 119 : 120) - spent)
  })

  test('revocations count against the agent’s request limit', async () => {
    const iso = isolate(mode, { RATE_LIMIT_REQUESTS_PER_AGENT: '5' })
    const auth = { Authorization: `Basic ${btoa(`${DEMO_AGENT}:${secret}`)}` }
    const statuses = await inMode(mode, async () => {
      const out: number[] = []
      for (let i = 0; i < 6; i++) {
        out.push(
          (await iso.fetch('/api/v1/agent/token/revoke', formPost({ token: `jti-${i}` }, auth)))
            .status,
        )
      }
      return out
    })
    expect(statuses).toEqual(
      [200, 200, 200, 200, 200, 429].map((x, i) =>
        // Redis failing: a revocation held in this isolate only says so (503), still counted.
        mode === 'redis failing' && i < 5 ? 503 : x,
      ),
    )
  })
})
