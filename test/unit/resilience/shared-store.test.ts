// redisBreakerStore over a fake RedisStore: the few client commands it uses (GET, SET with
// NX/PX, EVAL of its compare-and-delete script), with keys that expire on a fake clock.
import type { Redis } from '@upstash/redis/cloudflare'
import { describe, expect, test } from 'vitest'
import type { RedisStore } from '../../../src/redis.ts'
import { CircuitBreakerPolicy, type RemoteBreakerView } from '../../../src/resilience/policy.ts'
import { redisBreakerStore } from '../../../src/resilience/shared-store.ts'
import { REALISTIC } from './breaker-sim.ts'
import { FakeClock } from './fakes.ts'

const T0 = 1_000_000
const PREFIX = 'test:'
const VIEW_KEY = `${PREFIX}breaker:neon`
const LEASE_KEY = `${VIEW_KEY}:probe`

/** The only script the fake runs: DEL KEYS[1] if its value is ARGV[1] (else 0). */
const COMPARE_AND_DELETE =
  /^if redis\.call\('GET', KEYS\[1\]\) == ARGV\[1\] then return redis\.call\('DEL', KEYS\[1\]\) end\s+return 0$/

/** Just enough of the Upstash client, with Redis' semantics for these commands. */
class FakeRedisClient {
  readonly entries = new Map<string, { value: string; expiresAt: number | null }>()
  readonly commands: string[] = []
  readonly #now: () => number

  constructor(now: () => number) {
    this.#now = now
  }

  async get<T>(key: string): Promise<T | null> {
    this.commands.push(`GET ${key}`)
    return (this.#live(key)?.value ?? null) as T | null
  }

  async set(
    key: string,
    value: string,
    opts: { nx?: boolean; px?: number } = {},
  ): Promise<'OK' | null> {
    this.commands.push(`SET ${key}${opts.nx ? ' NX' : ''}${opts.px ? ` PX ${opts.px}` : ''}`)
    if (opts.nx && this.#live(key)) return null
    this.entries.set(key, { value, expiresAt: opts.px ? this.#now() + opts.px : null })
    return 'OK'
  }

  async eval(script: string, keys: string[], args: string[]): Promise<number> {
    this.commands.push(`EVAL ${keys.join(' ')} ${args.join(' ')}`)
    if (!COMPARE_AND_DELETE.test(script.trim())) throw new Error('NOSCRIPT not known to the fake')
    const [key] = keys
    if (key === undefined || this.#live(key)?.value !== args[0]) return 0
    this.entries.delete(key)
    return 1
  }

  #live(key: string) {
    const entry = this.entries.get(key)
    if (entry?.expiresAt != null && entry.expiresAt <= this.#now()) this.entries.delete(key)
    return this.entries.get(key)
  }
}

function fakeRedis(clock: FakeClock) {
  const client = new FakeRedisClient(clock.now)
  const operations: string[] = []
  // The fake implements only what redisBreakerStore calls; the cast is confined to here.
  const asRedis = client as unknown as Redis
  const redis: RedisStore = {
    client: asRedis,
    key: (...parts) => PREFIX + parts.join(':'),
    async run(operation, work) {
      operations.push(operation)
      return work(asRedis)
    },
  }
  return { client, operations, store: redisBreakerStore(redis) }
}

const view: RemoteBreakerView = {
  v: 1,
  state: 'OPEN',
  since: T0,
  openUntil: T0 + 1000,
  isolate: 'a',
}

describe('redisBreakerStore', () => {
  test('publish writes the view for an hour; read returns it', async () => {
    const clock = new FakeClock(T0)
    const { client, operations, store } = fakeRedis(clock)
    expect(await store.read('neon')).toBeUndefined()
    await store.publish('neon', view)
    expect(client.entries.get(VIEW_KEY)).toEqual({
      value: JSON.stringify(view),
      expiresAt: T0 + 60 * 60 * 1000,
    })
    expect(await store.read('neon')).toEqual(view)
    expect(operations).toEqual(['breaker-read', 'breaker-publish', 'breaker-read'])
  })

  test('read ignores what is not a view', async () => {
    const clock = new FakeClock(T0)
    const { client, store } = fakeRedis(clock)
    for (const raw of ['not json', '{"v":2}', JSON.stringify({ ...view, state: 'AJAR' }), '42']) {
      client.entries.set(VIEW_KEY, { value: raw, expiresAt: null })
      expect(await store.read('neon')).toBeUndefined()
    }
  })

  test('claimProbe: SET NX PX elects one isolate; the holder claims again; expiry frees it', async () => {
    const clock = new FakeClock(T0)
    const { client, operations, store } = fakeRedis(clock)
    expect(await store.claimProbe('neon', 'a', 5000)).toBe(true)
    expect(client.entries.get(LEASE_KEY)).toEqual({ value: 'a', expiresAt: T0 + 5000 })
    expect(await store.claimProbe('neon', 'b', 5000)).toBe(false)
    clock.advance(1000)
    expect(await store.claimProbe('neon', 'a', 5000)).toBe(true) // already its own
    expect(client.entries.get(LEASE_KEY)).toEqual({ value: 'a', expiresAt: T0 + 5000 })
    clock.set(T0 + 5000)
    expect(await store.claimProbe('neon', 'b', 5000)).toBe(true)
    expect(client.entries.get(LEASE_KEY)?.value).toBe('b')
    expect(new Set(operations)).toEqual(new Set(['breaker-probe']))
  })

  test('releaseProbe deletes the lease only when this isolate holds it', async () => {
    const clock = new FakeClock(T0)
    const { client, operations, store } = fakeRedis(clock)
    await store.releaseProbe('neon', 'a') // no lease: nothing happens
    expect(client.entries.has(LEASE_KEY)).toBe(false)

    await store.claimProbe('neon', 'a', 5000)
    await store.releaseProbe('neon', 'b') // not b's
    expect(client.entries.get(LEASE_KEY)?.value).toBe('a')
    await store.releaseProbe('neon', 'a')
    expect(client.entries.has(LEASE_KEY)).toBe(false)
    expect(await store.claimProbe('neon', 'b', 5000)).toBe(true) // free at once

    // b's lease expired and c took it over: b's late release must leave c's alone
    clock.advance(5000)
    await store.claimProbe('neon', 'c', 5000)
    await store.releaseProbe('neon', 'b')
    expect(client.entries.get(LEASE_KEY)?.value).toBe('c')
    expect(client.commands.filter((c) => c.startsWith('EVAL'))).toEqual([
      `EVAL ${LEASE_KEY} a`,
      `EVAL ${LEASE_KEY} b`,
      `EVAL ${LEASE_KEY} a`,
      `EVAL ${LEASE_KEY} b`,
    ])
    expect(operations.at(-1)).toBe('breaker-probe')
  })

  test('leases are per breaker', async () => {
    const clock = new FakeClock(T0)
    const { client, store } = fakeRedis(clock)
    await store.claimProbe('neon', 'a', 5000)
    expect(await store.claimProbe('upstream', 'b', 5000)).toBe(true)
    await store.releaseProbe('upstream', 'b')
    expect(client.entries.get(LEASE_KEY)?.value).toBe('a')
  })

  test('store errors reach the caller (the policy decides what they mean)', async () => {
    const clock = new FakeClock(T0)
    const { client, store } = fakeRedis(clock)
    client.eval = async () => {
      throw new Error('Command failed: ERR service unavailable')
    }
    await expect(store.releaseProbe('neon', 'a')).rejects.toThrow('service unavailable')
  })

  test('through a policy: the lease is gone once the probe has settled', async () => {
    const clock = new FakeClock(T0)
    const { client, store } = fakeRedis(clock)
    const pending: Promise<unknown>[] = []
    const defer = (work: Promise<unknown>) => {
      pending.push(work)
    }
    const policy = new CircuitBreakerPolicy({
      name: 'neon',
      config: REALISTIC,
      now: clock.now,
      random: () => 0.5,
      isolate: 'a',
      shared: store,
      probeLeaseMs: 5000,
    })
    for (let i = 0; i < REALISTIC.consecutiveFailures; i++) {
      await policy.execute(async () => Promise.reject(new Error('down')), { defer }).catch(() => {})
    }
    expect(policy.state).toBe('OPEN')
    clock.advance(REALISTIC.openMs)
    await expect(policy.execute(async () => 'row', { defer })).resolves.toBe('row')
    await Promise.all(pending)
    expect(policy.state).toBe('CLOSED')
    expect(client.entries.has(LEASE_KEY)).toBe(false)
    expect(JSON.parse(client.entries.get(VIEW_KEY)?.value ?? 'null')).toMatchObject({
      state: 'CLOSED',
      isolate: 'a',
    })
  })
})
