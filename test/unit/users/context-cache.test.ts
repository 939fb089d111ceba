// The per-isolate context cache counts what an entry holds: the payload's members and the hit
// body encoded from them, each once (an entry's bytes against CONTEXT_CACHE_MAX_BYTES).
import { expect, test } from 'vitest'
import { parseTunables } from '../../../src/config/tunables.ts'
import { contextCache } from '../../../src/users/context.ts'

function cacheWith(maxBytes: number) {
  const { tunables } = parseTunables({ CONTEXT_CACHE_MAX_BYTES: String(maxBytes) }, 'development')
  expect(tunables.contextCacheMaxBytes).toBe(maxBytes)
  return contextCache(tunables, () => 1_000_000)
}

const members = (text: string) =>
  `"user":{"id":"u1","display_name":${JSON.stringify(text)},"timezone":"UTC","locale":"en"},"context":{},"progress":[]`

test('an ASCII entry costs its members and its hit body once each: about twice the members', async () => {
  const value = { members: members('x'.repeat(400)), etag: 'W/"0123456789abcdef01234567"' }
  const body = value.members.length + 80 // `{…,"source":"cache","cached_at":"…","degraded":false}`
  // Room for the members, the body and the ETag, but not for the members counted twice over.
  const cache = cacheWith(value.members.length * 2 + body - value.members.length + 40)
  await cache.swr('u1', async () => value)
  expect(cache.fresh('u1')?.value?.hit?.body.byteLength).toBeGreaterThan(value.members.length)
})

test('an entry larger than the bound is still answered, and not kept', async () => {
  const value = { members: members('x'.repeat(1000)), etag: 'W/"e"' }
  const cache = cacheWith(1024)
  const read = await cache.swr('u1', async () => value)
  expect(read.value?.members).toBe(value.members)
  expect(cache.fresh('u1')).toBeUndefined()
})

test('a non-Latin-1 entry is counted at two bytes a character, as V8 holds it', async () => {
  const value = { members: members('名'.repeat(200)), etag: 'W/"e"' }
  const utf8 = new TextEncoder().encode(value.members).byteLength
  const cache = cacheWith(value.members.length * 2 + utf8 + 120)
  await cache.swr('u1', async () => value)
  expect(cache.fresh('u1')).toBeDefined()
  const smaller = cacheWith(value.members.length + utf8 + 120)
  await smaller.swr('u1', async () => value)
  expect(smaller.fresh('u1')).toBeUndefined()
})
