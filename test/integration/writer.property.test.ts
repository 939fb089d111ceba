// The writer against the real Postgres (through the Neon stand-in), property-tested over
// generated schedules: direct commits and flushed claims, in any order, with keys re-used by
// the same and other agents, repeated and re-delivered updates, equal and out-of-order
// occurred_at, keys inside and past the dedupe window (attack F3, F4).
//
// The oracle is written here, independently of the SQL:
// - the event log holds exactly one event per distinct (agent, key, fingerprint) written, with
//   the content of its first write;
// - a direct commit that re-uses a key for another update within the window is refused whole
//   (SQLSTATE PK422) and changes nothing; its accepted/duplicates follow the window rule;
// - current state of each (user, task) is, write after write, the newest event that write
//   recorded (occurred_at, then received_at, key, agent, fingerprint as code points), when it
//   is newer than the stored one — never a write's unrecorded update, never skipped.
import fc from 'fast-check'
import { describe, expect, test } from 'vitest'
import { sql } from '../../src/db/client.ts'
import type { BufferedUpdate } from '../../src/progress/model.ts'
import { KEY_REUSED_SQLSTATE, writeDirect, writeFlushed } from '../../src/progress/writer.ts'
import { integrationScenario } from './support.ts'

const sc = await integrationScenario()
const services = sc.services({ UPSTASH_REDIS_REST_URL: '', UPSTASH_REDIS_REST_TOKEN: '' })
const db = services.db!

const WINDOW = 60_000
const T0 = Date.parse('2026-01-01T00:00:00Z')
const STATUSES = ['in_progress', 'completed'] as const

interface Content {
  task: number
  status: (typeof STATUSES)[number]
  progress: number
  /** Seconds after T0. */
  at: number
}
const content = fc.record({
  task: fc.integer({ min: 0, max: 1 }),
  status: fc.constantFrom(...STATUSES),
  progress: fc.integer({ min: 0, max: 100 }),
  at: fc.integer({ min: 0, max: 4 }),
})
/** An update: an agent, a key, one of the run's few contents (so keys meet the same content
 * and other content). */
const update = fc.record({
  agent: fc.constantFrom('agent-a', 'agent-b'),
  key: fc.constantFrom('k1', 'k2', 'k3'),
  pick: fc.integer({ min: 0, max: 2 }),
  /** When the API took it, in windows after T0: 0 and 1 are within one window, 3 past it. */
  received: fc.constantFrom(0, 0.5, 1, 3),
})
const write = fc.record({
  direct: fc.boolean(),
  updates: fc.array(update, { minLength: 1, maxLength: 4 }),
})
const schedule = fc.record({
  contents: fc.array(content, { minLength: 3, maxLength: 3 }),
  writes: fc.array(write, { minLength: 1, maxLength: 6 }),
})

interface Event {
  agent: string
  key: string
  fp: string
  task: string
  status: string
  progress: number
  at: number
  received: number
}
/** A fingerprint covers every member, the user included (each run has its own user). */
const fpOf = (user: string, c: Content) => `f1:${user}/${c.task}/${c.status}/${c.progress}/${c.at}`
/** Code-point order, as COLLATE "C" compares UTF-8 bytes. */
const cmp = (a: string, b: string) => {
  const x = [...a].map((ch) => ch.codePointAt(0)!)
  const y = [...b].map((ch) => ch.codePointAt(0)!)
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i]! - y[i]!
  return x.length - y.length
}
const newer = (a: Event, b: Event) =>
  a.at !== b.at
    ? a.at > b.at
    : a.received !== b.received
      ? a.received > b.received
      : cmp(a.key, b.key) !== 0
        ? cmp(a.key, b.key) > 0
        : cmp(a.agent, b.agent) !== 0
          ? cmp(a.agent, b.agent) > 0
          : cmp(a.fp, b.fp) > 0

type Plan = typeof schedule extends fc.Arbitrary<infer T> ? T : never

let run = 0
/** What the schedules exercised: the property must meet every case, not only the easy ones. */
const seen = { refused: 0, direct: 0, flushed: 0, duplicates: 0, multiEvent: 0 }

async function check(plan: Plan) {
  run++
  const user = `writer-prop-${run}-${crypto.randomUUID().slice(0, 8)}`
  await db.query(sql`INSERT INTO users (id, display_name) VALUES (${user}, 'generated')`)
  const taskOf = (t: number) => `task-${t}`
  const log: Event[] = []
  const state = new Map<string, Event>()

  for (const w of plan.writes) {
    const batchId = crypto.randomUUID()
    const items: BufferedUpdate[] = w.updates
      .map(({ pick, ...u }) => ({ ...u, content: plan.contents[pick]! }))
      .map((u) => ({
        id: crypto.randomUUID(),
        batchId,
        // Agents of this run only: keys are per agent, and other runs' keys must not meet these.
        agentId: `${u.agent}-${run}`,
        idempotencyKey: u.key,
        fingerprint: fpOf(user, u.content),
        userId: user,
        taskId: taskOf(u.content.task),
        status: u.content.status,
        progress: u.content.progress,
        data: null,
        occurredAt: new Date(T0 + u.content.at * 1000).toISOString(),
        receivedAt: T0 + u.received * WINDOW,
      }))
    const asEvent = (u: BufferedUpdate): Event => ({
      agent: u.agentId,
      key: u.idempotencyKey,
      fp: u.fingerprint!,
      task: u.taskId,
      status: u.status,
      progress: u.progress,
      at: Date.parse(u.occurredAt),
      received: u.receivedAt,
    })
    const same = (e: Event, u: BufferedUpdate) =>
      e.agent === u.agentId && e.key === u.idempotencyKey && e.fp === u.fingerprint

    if (w.direct) {
      // One request: all its updates are one agent's and never re-use a key among themselves
      // (the request is refused before the writer otherwise).
      const agent = items[0]!.agentId
      const mine = items
        .map((u) => ({ ...u, agentId: agent }))
        .filter(
          (u, i, all) =>
            all.findIndex((v) => v.idempotencyKey === u.idempotencyKey) === i ||
            all.find((v) => v.idempotencyKey === u.idempotencyKey)!.fingerprint === u.fingerprint,
        )
      const committedAt = Math.max(...mine.map((u) => u.receivedAt))
      const since = committedAt - WINDOW
      const reused = mine.some((u) =>
        log.some(
          (e) =>
            e.agent === u.agentId &&
            e.key === u.idempotencyKey &&
            e.fp !== u.fingerprint &&
            e.received >= since,
        ),
      )
      let answer: Awaited<ReturnType<typeof writeDirect>> | undefined
      let refusal: unknown
      try {
        answer = await writeDirect(
          db,
          { id: batchId, agentId: agent },
          mine,
          committedAt,
          {},
          WINDOW,
        )
      } catch (err) {
        refusal = err
      }
      if (reused) {
        expect((refusal as { code?: string })?.code).toBe(KEY_REUSED_SQLSTATE)
        seen.refused++
        continue
      }
      seen.direct++
      expect(refusal).toBeUndefined()
      const firsts = new Set<string>()
      let duplicates = 0
      for (const u of mine) {
        const repeated = firsts.has(u.idempotencyKey)
        firsts.add(u.idempotencyKey)
        if (repeated || log.some((e) => same(e, u) && e.received >= since)) duplicates++
      }
      expect(answer).toMatchObject({ accepted: mine.length - duplicates, duplicates })
      if (duplicates) seen.duplicates++
      apply(mine)
    } else {
      await writeFlushed(db, items, [], T0, {})
      seen.flushed++
      apply(items)
    }

    function apply(written: BufferedUpdate[]) {
      const recorded: Event[] = []
      for (const u of written) {
        if (log.some((e) => same(e, u)) || recorded.some((e) => same(e, u))) continue
        recorded.push(asEvent(u))
      }
      log.push(...recorded)
      for (const task of new Set(recorded.map((e) => e.task))) {
        const latest = recorded
          .filter((e) => e.task === task)
          .reduce((best, e) => (newer(e, best) ? e : best))
        const stored = state.get(task)
        if (!stored || stored.at < latest.at) state.set(task, latest)
      }
    }
  }

  const events = await db.query<{
    agent_id: string
    idempotency_key: string
    fingerprint: string
    task_id: string
    progress: number
  }>(
    sql`SELECT agent_id, idempotency_key, fingerprint, task_id, progress FROM progress_events
        WHERE user_id = ${user}`,
  )
  // A key holding two updates: one answered after the key was forgotten, or in a race.
  const perKey = new Map<string, number>()
  for (const e of log)
    perKey.set(`${e.agent} ${e.key}`, (perKey.get(`${e.agent} ${e.key}`) ?? 0) + 1)
  if ([...perKey.values()].some((n) => n > 1)) seen.multiEvent++
  const show = (e: { agent: string; key: string; fp: string; task: string; progress: number }) =>
    `${e.agent} ${e.key} ${e.fp} ${e.task} ${e.progress}`
  expect(
    events
      .map((e) =>
        show({
          agent: e.agent_id,
          key: e.idempotency_key,
          fp: e.fingerprint,
          task: e.task_id,
          progress: e.progress,
        }),
      )
      .sort(),
  ).toEqual(log.map(show).sort())

  const rows = await db.query<{
    task_id: string
    agent_id: string
    status: string
    progress: number
    at: Date
  }>(
    sql`SELECT task_id, agent_id, status, progress, occurred_at AS at FROM progress_state
        WHERE user_id = ${user}`,
  )
  const stored = Object.fromEntries(
    rows.map((r) => [
      r.task_id,
      `${r.agent_id} ${r.status} ${r.progress} ${new Date(r.at).getTime()}`,
    ]),
  )
  const expected = Object.fromEntries(
    [...state].map(([task, e]) => [task, `${e.agent} ${e.status} ${e.progress} ${e.at}`]),
  )
  expect(stored).toEqual(expected)
}

describe('the writer against the real Postgres', () => {
  test('property: one event per update, refusals within the window, state the newest recorded', async () => {
    const numRuns = Number(process.env.WRITER_RUNS ?? 60)
    await fc.assert(fc.asyncProperty(schedule, check), { numRuns })
    process.stdout.write(`[writer] ${numRuns} schedules: ${JSON.stringify(seen)}\n`)
    // Not vacuous: refusals, counted duplicates and keys holding two updates all occurred.
    for (const [what, n] of Object.entries(seen)) expect(n, what).toBeGreaterThan(0)
  }, 240_000)
})
