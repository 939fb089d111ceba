// Cross-isolate context invalidation through Redis: each change drops a user's entry once
// in every isolate, and a later poll does not drop the context read since.
import { expect, test } from 'vitest'
import { redisAvailable } from '../../local/engines.ts'
import { useNodeStack } from '../support/node-stack.ts'

const stack = useNodeStack()
const hasRedis = await redisAvailable()

const context = (tag: string) => async () => ({ members: `"tag":"${tag}"`, etag: `"${tag}"` })

test.runIf(hasRedis)('each invalidation is applied once per isolate, never again', async () => {
  const clock = { now: Date.now() }
  const env = {
    REDIS_KEY_PREFIX: `t:${crypto.randomUUID().slice(0, 8)}:`,
    CONTEXT_INVALIDATION_POLL_MS: '100',
  }
  const a = stack().services(env, { clock: { now: () => clock.now } })
  const b = stack().services(env, { clock: { now: () => clock.now } })
  const poll = async (isolate: typeof a) => {
    const work: Promise<unknown>[] = []
    isolate.progress.invalidations.poll({ defer: (w) => work.push(w) })
    await Promise.all(work)
  }
  for (const isolate of [a, b]) await isolate.caches.userContext.swr('u1', context('old'))

  clock.now += 1
  await a.progress.invalidations.publish(['u1'])
  expect(a.caches.userContext.fresh('u1')).toBeUndefined() // at once where it changed
  clock.now += 200
  await poll(b)
  expect(b.caches.userContext.fresh('u1')).toBeUndefined() // and elsewhere by the next poll

  // Both read the new context; later polls (of either) leave it alone.
  for (const isolate of [a, b]) await isolate.caches.userContext.swr('u1', context('new'))
  for (let round = 0; round < 2; round++) {
    clock.now += 200
    await poll(a)
    await poll(b)
  }
  expect(a.caches.userContext.fresh('u1')?.value?.etag).toBe('"new"')
  expect(b.caches.userContext.fresh('u1')?.value?.etag).toBe('"new"')

  // A second change to the same user is applied again.
  clock.now += 1
  await a.progress.invalidations.publish(['u1'])
  clock.now += 200
  await poll(b)
  expect(b.caches.userContext.fresh('u1')).toBeUndefined()
})
