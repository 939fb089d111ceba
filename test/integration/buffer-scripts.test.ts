// The buffer's Lua scripts against the real Redis: no script moves an item out of `ready` or
// `processing` without placing it somewhere (an undecodable one goes to the dead letters in
// the same script), a refused append writes nothing, and a random schedule of every operation
// keeps each item in exactly one place until it is acknowledged or discarded.
import fc from 'fast-check'
import { describe, expect, test } from 'vitest'
import type { Services } from '../../src/services.ts'
import { bufferRaw, integrationScenario, item, undecodable, whereIs } from './support.ts'

const sc = await integrationScenario()
const fresh = (extra: Record<string, string> = {}) =>
  sc.services({ REDIS_KEY_PREFIX: `t:${crypto.randomUUID().slice(0, 8)}:`, ...extra })
const batchOf = (id: string, agentId = 'demo-agent') => ({ id, agentId })

/** Every key under the services' prefix with its content (not its TTL). */
async function keysUnder(services: Services): Promise<Record<string, unknown>> {
  const redis = services.redis!
  const names = (await redis.client.keys(redis.key('*'))) as string[]
  const out: Record<string, unknown> = {}
  for (const name of names.sort()) {
    const type = await redis.client.type(name)
    out[name] =
      type === 'hash'
        ? await redis.client.hgetall(name)
        : type === 'zset'
          ? await redis.client.zrange(name, 0, -1, { withScores: true })
          : await redis.client.get(name)
  }
  return out
}

describe.runIf(sc.hasRedis)(
  'buffer scripts: nothing leaves ready/processing without a place',
  () => {
    test('append: a key re-used for another update, or a full buffer, writes nothing', async () => {
      const services = fresh({ PROGRESS_BUFFER_MAX_DEPTH: '100' })
      const buffer = services.progress.buffer!
      const first = item()
      expect(await buffer.append(batchOf(first.batchId), [first], Date.now())).toMatchObject({
        ok: true,
        accepted: 1,
      })
      const before = await keysUnder(services)
      const reuse = { ...item(), idempotencyKey: first.idempotencyKey, fingerprint: 'f1:other' }
      expect(
        await buffer.append(batchOf(crypto.randomUUID()), [item(), reuse], Date.now()),
      ).toEqual({
        ok: false,
        reason: 'key_reused',
        index: 1,
      })
      const full = Array.from({ length: 100 }, () => item())
      expect(await buffer.append(batchOf(crypto.randomUUID()), full, Date.now())).toMatchObject({
        ok: false,
        reason: 'full',
      })
      // Past the agent's share (25 of 100 by default), another agent still has room.
      const share = Array.from({ length: 25 }, () => item())
      expect(await buffer.append(batchOf(crypto.randomUUID()), share, Date.now())).toMatchObject({
        ok: false,
        reason: 'agent_full',
        depth: 1,
      })
      expect(await keysUnder(services)).toEqual(before)
      const stranger = item({ agentId: 'demo-agent-2' })
      expect(
        await buffer.append(batchOf(stranger.batchId, 'demo-agent-2'), [stranger], Date.now()),
      ).toMatchObject({ ok: true, accepted: 1 })
      // The same update again is a duplicate; an item from before fingerprints too.
      const again = await buffer.append(
        batchOf(crypto.randomUUID()),
        [{ ...first, id: crypto.randomUUID() }],
        Date.now(),
      )
      expect(again).toMatchObject({ ok: true, accepted: 0, duplicates: 1 })
    })

    test('append: a duplicate is buffered (its batch waits for it); one of a key an older version held is settled at once, for Postgres to record', async () => {
      const services = fresh()
      const buffer = services.progress.buffer!
      const first = item()
      await buffer.append(batchOf(first.batchId), [first], Date.now())
      const dup = { ...first, id: crypto.randomUUID(), batchId: crypto.randomUUID() }
      expect(await buffer.append(batchOf(dup.batchId), [dup], Date.now())).toMatchObject({
        accepted: 0,
        duplicates: 1,
        depth: 2,
      })
      expect(await whereIs(services, dup.id)).toBe('ready')
      expect(await buffer.batch(dup.batchId)).toMatchObject({ outstanding: 1, committedAt: null })
      // A key an older version remembered without a fingerprint: its update is in Postgres.
      const legacy = item()
      await buffer.rememberKeys(
        [{ ...legacy, fingerprint: null, receivedAt: Date.now() }],
        Date.now(),
      )
      const at = Date.now()
      expect(await buffer.append(batchOf(legacy.batchId), [legacy], at)).toMatchObject({
        accepted: 0,
        duplicates: 1,
      })
      expect(await whereIs(services, legacy.id)).toBe('gone')
      expect(await buffer.batch(legacy.batchId)).toMatchObject({ committedAt: at })
      expect(await buffer.unrecordedBatches(10)).toEqual([
        {
          id: legacy.batchId,
          agentId: 'demo-agent',
          accepted: 0,
          duplicates: 1,
          discarded: 0,
          committedAt: at,
        },
      ])
    })

    test('claim: decodable items to processing, an undecodable one to the dead letters', async () => {
      const services = fresh()
      const buffer = services.progress.buffer!
      const good = item()
      await buffer.append(batchOf(good.batchId), [good], Date.now())
      const bad = undecodable()
      await bufferRaw(services, bad)
      const claim = await buffer.claim(Date.now(), 100)
      expect(claim.items.map((i) => i.id)).toEqual([good.id])
      expect(claim.buried).toBe(1)
      expect(await whereIs(services, good.id)).toBe('processing')
      expect(await whereIs(services, bad.id)).toBe('dead')
      expect((await buffer.deadLetters()).items).toEqual([
        { id: bad.id, item: bad.json, reason: { kind: 'undecodable', at: expect.any(Number) } },
      ])
    })

    test('claim, re-delivering an expired claim: an undecodable item goes to the dead letters', async () => {
      const services = fresh({ PROGRESS_CLAIM_TIMEOUT_MS: '5000' })
      const buffer = services.progress.buffer!
      const bad = undecodable()
      await bufferRaw(services, bad)
      // Claimed by a version that could read it, which then died.
      const redis = services.redis!
      await redis.client.zrem(redis.key('progress', 'ready'), bad.id)
      await redis.client.zadd(redis.key('progress', 'processing'), {
        score: Date.now() - 1,
        member: bad.id,
      })
      expect(await whereIs(services, bad.id)).toBe('processing')
      const claim = await buffer.claim(Date.now(), 100)
      expect(claim).toMatchObject({ items: [], buried: 1 })
      expect(await whereIs(services, bad.id)).toBe('dead')
    })

    test('nack: back to ready, an undecodable one to the dead letters', async () => {
      const services = fresh()
      const buffer = services.progress.buffer!
      const good = item()
      await buffer.append(batchOf(good.batchId), [good], Date.now())
      const { items } = await buffer.claim(Date.now(), 100)
      const bad = undecodable()
      const redis = services.redis!
      await redis.client.hset(redis.key('progress', 'items'), { [bad.id]: bad.json })
      await redis.client.zadd(redis.key('progress', 'processing'), {
        score: Date.now() + 60_000,
        member: bad.id,
      })
      await buffer.nack([...items, { ...good, id: bad.id }], Date.now())
      expect(await whereIs(services, good.id)).toBe('ready')
      expect(await whereIs(services, bad.id)).toBe('dead')
    })

    test('bury: from processing to the dead letters with why; anything else stays put', async () => {
      const services = fresh()
      const buffer = services.progress.buffer!
      const [a, b] = [item(), item()]
      await buffer.append(batchOf(a.batchId), [a, { ...b, batchId: a.batchId }], Date.now())
      await buffer.claim(Date.now(), 1) // only one is claimed
      const claimed = (await whereIs(services, a.id)) === 'processing' ? a : b
      const waiting = claimed === a ? b : a
      const reason = { kind: 'data_error' as const, sqlstate: '22023', at: Date.now() }
      expect(
        await buffer.bury([
          { update: { ...claimed, batchId: a.batchId }, reason },
          { update: { ...waiting, batchId: a.batchId }, reason },
        ]),
      ).toBe(1)
      expect(await whereIs(services, claimed.id)).toBe('dead')
      expect(await whereIs(services, waiting.id)).toBe('ready')
      expect((await buffer.deadLetters()).items[0]?.reason).toEqual(reason)
      expect(await buffer.batch(a.batchId)).toMatchObject({ outstanding: 1, deadLetters: 1 })
    })

    test('ack: only claimed items are forgotten', async () => {
      const services = fresh()
      const buffer = services.progress.buffer!
      const [a, b] = [item(), item()]
      await buffer.append(batchOf(a.batchId), [a], Date.now())
      await buffer.append(batchOf(b.batchId), [b], Date.now())
      await buffer.claim(Date.now(), 1)
      const claimed = (await whereIs(services, a.id)) === 'processing' ? a : b
      const waiting = claimed === a ? b : a
      expect(await buffer.ack([a, b], Date.now())).toBe(1)
      expect(await whereIs(services, claimed.id)).toBe('gone')
      expect(await whereIs(services, waiting.id)).toBe('ready')
    })

    test('redrive: back to ready as buffered; an undecodable one stays a dead letter', async () => {
      const services = fresh()
      const buffer = services.progress.buffer!
      const good = item()
      await buffer.append(batchOf(good.batchId), [good], Date.now())
      await buffer.claim(Date.now(), 100)
      await buffer.bury([
        { update: good, reason: { kind: 'data_error', sqlstate: '23514', at: 1 } },
      ])
      const bad = undecodable()
      await bufferRaw(services, bad)
      await buffer.claim(Date.now(), 100) // buries it
      const outcome = await buffer.redrive([good.id, bad.id, 'nope'])
      expect([...outcome]).toEqual([
        [good.id, 'redriven'],
        [bad.id, 'undecodable'],
        ['nope', 'not_found'],
      ])
      expect(await whereIs(services, good.id)).toBe('ready')
      expect(await whereIs(services, bad.id)).toBe('dead')
      expect(await buffer.batch(good.batchId)).toMatchObject({ outstanding: 1, deadLetters: 0 })
      const { items } = await buffer.claim(Date.now(), 100)
      expect(items.map((i) => i.id)).toEqual([good.id])
    })

    test('discard: the dead letter is gone; its batch settles as committed, counting it', async () => {
      const services = fresh()
      const buffer = services.progress.buffer!
      const u = item()
      await buffer.append(batchOf(u.batchId), [u], Date.now())
      await buffer.claim(Date.now(), 100)
      await buffer.bury([{ update: u, reason: { kind: 'data_error', sqlstate: '22023', at: 1 } }])
      expect(await buffer.batch(u.batchId)).toMatchObject({ committedAt: null, deadLetters: 1 })
      expect([...(await buffer.discard([u.id, 'nope'], 1234))]).toEqual([
        [u.id, 'discarded'],
        ['nope', 'not_found'],
      ])
      expect(await whereIs(services, u.id)).toBe('gone')
      expect(await buffer.batch(u.batchId)).toMatchObject({
        committedAt: 1234,
        deadLetters: 0,
        discarded: 1,
        outstanding: 0,
      })
    })

    test('a random schedule of every operation keeps each item in exactly one place', async () => {
      type Op =
        | { op: 'append'; count: number; poison: boolean }
        | { op: 'claim'; limit: number }
        | { op: 'ack' | 'nack' | 'bury' | 'redrive' | 'discard'; pick: number }
        | { op: 'wait' }
      const op: fc.Arbitrary<Op> = fc.oneof(
        fc.record({
          op: fc.constant('append' as const),
          count: fc.integer({ min: 1, max: 4 }),
          poison: fc.boolean(),
        }),
        fc.record({ op: fc.constant('claim' as const), limit: fc.integer({ min: 1, max: 5 }) }),
        fc.record({
          op: fc.constantFrom(
            'ack' as const,
            'nack' as const,
            'bury' as const,
            'redrive' as const,
            'discard' as const,
          ),
          pick: fc.nat(),
        }),
        fc.constant({ op: 'wait' as const }),
      )
      await fc.assert(
        fc.asyncProperty(fc.array(op, { minLength: 5, maxLength: 25 }), async (ops) => {
          let now = Date.now()
          const services = sc.services(
            {
              REDIS_KEY_PREFIX: `t:${crypto.randomUUID().slice(0, 8)}:`,
              PROGRESS_CLAIM_TIMEOUT_MS: '1000',
              DATABASE_TIMEOUT_MS: '500', // the claim timeout must exceed it (tunables.ts)
            },
            { clock: { now: () => now } },
          )
          const buffer = services.progress.buffer!
          // The model: where each item must be, as far as the operations say.
          const known = new Map<string, ReturnType<typeof item>>()
          const finished = new Set<string>() // acknowledged or discarded
          let claimed: ReturnType<typeof item>[] = []
          let poisoned = false
          for (const step of ops) {
            if (step.op === 'append') {
              const batch = crypto.randomUUID()
              const items = Array.from({ length: step.count }, () =>
                item({ batchId: batch, receivedAt: now }),
              )
              await buffer.append(batchOf(batch), items, now)
              for (const i of items) known.set(i.id, i)
              if (step.poison) {
                poisoned = true
                const bad = undecodable(batch)
                await bufferRaw(services, { ...bad, receivedAt: now })
                known.set(bad.id, item({ id: bad.id, batchId: batch }))
              }
            } else if (step.op === 'claim') {
              claimed = (await buffer.claim(now, step.limit)).items
            } else if (step.op === 'wait') {
              now += 1500 // past the claim timeout: the next claim re-delivers
            } else {
              const ids = [...known.keys()].filter((id) => !finished.has(id))
              const chosen = ids.length ? ids[step.pick % ids.length]! : undefined
              if (chosen === undefined) continue
              const update = known.get(chosen)!
              if (step.op === 'ack') {
                if ((await buffer.ack([update], now)) === 1) finished.add(chosen)
              } else if (step.op === 'nack') await buffer.nack([update], now)
              else if (step.op === 'bury') {
                await buffer.bury([
                  { update, reason: { kind: 'data_error', sqlstate: '22023', at: now } },
                ])
              } else if (step.op === 'redrive') await buffer.redrive([chosen])
              else if ((await buffer.discard([chosen], now)).get(chosen) === 'discarded') {
                finished.add(chosen)
              }
            }
            let buffered = 0
            for (const id of known.keys()) {
              const place = await whereIs(services, id)
              expect(place, `${step.op}: ${id}`).toEqual(
                finished.has(id) ? 'gone' : expect.stringMatching(/^(ready|processing|dead)$/),
              )
              if (place === 'ready' || place === 'processing') buffered++
            }
            // The agent's share counts exactly its items ready or claimed (items an older
            // version buffered were never counted: only schedules without them are exact).
            if (!poisoned) {
              const depth = await services.redis!.client.hget(
                services.redis!.key('progress', 'agent-depth'),
                'demo-agent',
              )
              expect(Number(depth ?? 0), `${step.op}: agent depth`).toBe(buffered)
            }
          }
          void claimed
        }),
        { numRuns: Number(process.env.SCRIPT_RUNS ?? 25) },
      )
    }, 120_000)
  },
)
