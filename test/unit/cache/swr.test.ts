import { describe, expect, test } from 'vitest'
import { SwrCache } from '../../../src/cache/swr.ts'

function cache(clock: { now: number }) {
  return new SwrCache<string>({
    maxEntries: 10,
    maxBytes: 1000,
    ttlMs: 100,
    staleMs: 100,
    negativeTtlMs: 10,
    sizeOf: (v) => v.length,
    now: () => clock.now,
  })
}

/** A load that answers only when told to. */
function pending(value: string) {
  let release = () => {}
  const started = new Promise<void>((resolve) => {
    release = resolve
  })
  return { load: () => started.then(() => value), release: () => release() }
}

describe('SwrCache', () => {
  test('MISS loads, HIT serves, STALE serves and reloads once, then MISS again', async () => {
    const clock = { now: 0 }
    const c = cache(clock)
    let loads = 0
    const load = async () => `v${++loads}`
    expect(await c.swr('k', load)).toMatchObject({ value: 'v1', status: 'MISS' })
    clock.now = 99
    expect(await c.swr('k', load)).toMatchObject({ value: 'v1', status: 'HIT' })
    clock.now = 150
    const deferred: Promise<unknown>[] = []
    const stale = await c.swr('k', load, { defer: (w) => deferred.push(w) })
    expect(stale).toMatchObject({ value: 'v1', status: 'STALE' })
    await Promise.all(deferred)
    expect(loads).toBe(2)
    expect(c.fresh('k')?.value).toBe('v2')
    clock.now = 150 + 201
    expect(await c.swr('k', load)).toMatchObject({ value: 'v3', status: 'MISS' })
  })

  // No read awaits a load another read started: on Workers that is another request's I/O.
  test('concurrent misses each load for themselves; bypass loads anyway', async () => {
    const c = cache({ now: 0 })
    let loads = 0
    const load = async () => `v${++loads}`
    const [a, b] = await Promise.all([c.swr('k', load), c.swr('k', load)])
    expect([a.value, b.value, loads]).toEqual(['v1', 'v2', 2])
    expect(await c.swr('k', load, { bypass: true })).toMatchObject({
      value: 'v3',
      status: 'BYPASS',
    })
  })

  test('one hung load holds only its own reader', async () => {
    const c = cache({ now: 0 })
    const hung = pending('never')
    const first = c.swr('k', hung.load)
    await Promise.resolve()
    expect(await c.swr('k', async () => 'own')).toMatchObject({ value: 'own', status: 'MISS' })
    hung.release()
    expect((await first).value).toBe('never')
  })

  test('a stale entry is reloaded once in the background, however many read it', async () => {
    const clock = { now: 0 }
    const c = cache(clock)
    await c.swr('k', async () => 'v1')
    clock.now = 150
    const reload = pending('v2')
    let loads = 0
    const deferred: Promise<unknown>[] = []
    const load = () => {
      loads++
      return reload.load()
    }
    for (let i = 0; i < 5; i++) {
      expect(await c.swr('k', load, { defer: (w) => deferred.push(w) })).toMatchObject({
        value: 'v1',
        status: 'STALE',
      })
    }
    expect([loads, deferred.length]).toEqual([1, 1])
    reload.release()
    await Promise.all(deferred)
    expect(c.fresh('k')?.value).toBe('v2')
  })

  test('an invalidation during a load keeps that load’s answer out of the cache', async () => {
    const c = cache({ now: 0 })
    const old = pending('before the change')
    const reading = c.swr('k', old.load)
    await Promise.resolve()
    c.invalidate('k') // the data changed while the read was under way
    old.release()
    expect((await reading).value).toBe('before the change') // that reader's own answer
    expect(c.fresh('k')).toBeUndefined() // but nobody after it gets the old data
    expect(await c.swr('k', async () => 'after the change')).toMatchObject({
      value: 'after the change',
      status: 'MISS',
    })
  })
})
