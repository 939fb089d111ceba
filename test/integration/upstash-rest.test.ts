// Conformance of the local Upstash REST stand-in, driven by the official clients
// (`@upstash/redis/cloudflare` as on the edge, the Node build, and `@upstash/ratelimit`).
import { randomUUID } from 'node:crypto'
import { Ratelimit } from '@upstash/ratelimit'
import { Redis as NodeRedis } from '@upstash/redis'
import { Redis, type RedisConfigCloudflare } from '@upstash/redis/cloudflare'
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest'
import { REDIS_URL, reachable, redisAvailable } from '../../local/engines.ts'
import {
  type ExecutedCommand,
  rewriteScriptForRedis,
  startUpstashRestStandin,
  type UpstashRestStandin,
} from '../../local/upstash-rest.ts'

const hasRedis = await redisAvailable()

// Lives only as long as this file: every key is under it and deleted afterwards.
const prefix = `test:upstash-rest:${randomUUID()}:`
let keyCounter = 0
const key = (name: string) => `${prefix}${name}:${++keyCounter}`

type Encoding = 'base64' | false
type ClientOptions = Omit<RedisConfigCloudflare, 'url' | 'token'>

let standin: UpstashRestStandin

/**
 * A client of the stand-in. Note `retry: false` still means one retry after a network error,
 * and auto-pipelining is on by default in @upstash/redis 1.39 (single commands then travel
 * through POST /pipeline): both are kept as upstream ships them unless a test says otherwise.
 */
function client(responseEncoding: Encoding = 'base64', extra: ClientOptions = {}): Redis {
  return new Redis(
    { url: standin.url, token: standin.token, responseEncoding, retry: false, ...extra },
    { UPSTASH_DISABLE_TELEMETRY: '1' },
  )
}

/** Raw HTTP against the stand-in, to check the wire itself. */
async function raw(
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; text: string; json: unknown; headers: Headers }> {
  const res = await fetch(`${standin.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${standin.token}`, ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
  const text = await res.text()
  return { status: res.status, text, json: JSON.parse(text), headers: res.headers }
}

/** Record the commands that reach Redis while `fn` runs. */
async function watchCommands(fn: () => Promise<unknown>): Promise<ExecutedCommand[]> {
  const seen: ExecutedCommand[] = []
  const stop = standin.onCommand((command) => seen.push(command))
  try {
    await fn()
  } finally {
    stop()
  }
  return seen
}

describe.skipIf(!hasRedis)('Upstash REST stand-in', () => {
  beforeAll(async () => {
    standin = await startUpstashRestStandin({ redisUrl: REDIS_URL })
  })

  afterEach(() => {
    standin.faults.reset()
  })

  afterAll(async () => {
    if (!standin) return
    standin.faults.reset()
    const redis = client(false)
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, { match: `${prefix}*`, count: 1000 })
      if (keys.length > 0) await redis.del(...keys)
      cursor = String(next)
    } while (cursor !== '0')
    await standin.close()
  })

  describe.each([
    { encoding: 'base64' as Encoding, auto: true },
    { encoding: 'base64' as Encoding, auto: false },
    { encoding: false as Encoding, auto: true },
    { encoding: false as Encoding, auto: false },
  ])('results with responseEncoding $encoding, auto-pipelining $auto', ({ encoding, auto }) => {
    const connect = (enc: Encoding, extra: ClientOptions = {}) =>
      client(enc, { enableAutoPipelining: auto, ...extra })
    const tricky = ['aGVsbG8=', 'true', '1234', 'null', 'OK', 'PONG', 'héllo wörld 🚀👩‍👩‍👧', '']

    test('strings come back byte for byte without deserialization', async () => {
      const redis = connect(encoding, { automaticDeserialization: false })
      for (const value of [...tricky, 'a\u0000b', '{"not":"parsed"}']) {
        const k = key('str')
        expect(await redis.set(k, value)).toBe('OK')
        expect(await redis.get(k)).toBe(value)
      }
    })

    test('strings that look like JSON are deserialized as upstream does', async () => {
      const redis = connect(encoding)
      const expected: Record<string, unknown> = {
        'aGVsbG8=': 'aGVsbG8=',
        true: true,
        '1234': 1234,
        null: null,
        OK: 'OK',
        'héllo wörld 🚀👩‍👩‍👧': 'héllo wörld 🚀👩‍👩‍👧',
        '': '',
      }
      for (const [value, parsed] of Object.entries(expected)) {
        const k = key('str')
        await redis.set(k, value)
        expect(await redis.get(k)).toStrictEqual(parsed)
      }
    })

    test('numbers and JSON values', async () => {
      const redis = connect(encoding)
      const plain = connect(encoding, { automaticDeserialization: false })
      for (const value of [42, 3.25, -7, 0]) {
        const k = key('num')
        await redis.set(k, value)
        expect(await redis.get(k)).toBe(value)
        expect(await plain.get(k)).toBe(String(value))
      }
      const k = key('json')
      const doc = { a: [1, 'x', { b: null }], emoji: '🚀', nested: { ok: true } }
      await redis.set(k, doc)
      expect(await redis.get(k)).toStrictEqual(doc)
      expect(await plain.get(k)).toBe(JSON.stringify(doc))
      const list = key('json-list')
      await redis.set(list, [1, 2, 'three'])
      expect(await redis.get(list)).toStrictEqual([1, 2, 'three'])
    })

    test('hashes, lists, sets and sorted sets', async () => {
      const redis = connect(encoding)
      const h = key('hash')
      expect(await redis.hset(h, { name: 'ada', n: 5, word: 'aGVsbG8=' })).toBe(3)
      expect(await redis.hgetall(h)).toStrictEqual({ name: 'ada', n: 5, word: 'aGVsbG8=' })
      expect(await redis.hincrby(h, 'n', 3)).toBe(8)
      expect(await redis.hget(h, 'missing')).toBeNull()

      const l = key('list')
      expect(await redis.lpush(l, 'a', 'b', 'c')).toBe(3)
      expect(await redis.lrange(l, 0, -1)).toStrictEqual(['c', 'b', 'a'])

      const s = key('set')
      expect(await redis.sadd(s, 'x', 'y', 'x')).toBe(2)
      expect((await redis.smembers(s)).sort()).toStrictEqual(['x', 'y'])
      expect(await redis.sismember(s, 'x')).toBe(1)

      const z = key('zset')
      expect(await redis.zadd(z, { score: 1.5, member: 'a' }, { score: -2, member: 'b' })).toBe(2)
      expect(await redis.zrange(z, 0, -1, { withScores: true })).toStrictEqual(['b', -2, 'a', 1.5])
      expect(await redis.zscore(z, 'a')).toBe(1.5)
      expect(await redis.zincrby(z, 1, 'b')).toBe(-1)
    })

    test('nested arrays: EVAL tables, XRANGE, SCAN', async () => {
      const redis = connect(encoding)
      const k = key('nested')
      const script = `return {1, {KEYS[1], ARGV[1], {ARGV[2]}}, {}, redis.status_reply('OK'), false, 'PONG'}`
      expect(await redis.eval(script, [k], ['x', 'aGVsbG8='])).toStrictEqual([
        1,
        [k, 'x', ['aGVsbG8=']],
        [],
        'OK',
        null,
        'PONG',
      ])

      const stream = key('stream')
      const id = await redis.xadd(stream, '*', { field: 'value', emoji: '🚀' })
      expect(await redis.xrange(stream, '-', '+')).toStrictEqual({
        [id]: { field: 'value', emoji: '🚀' },
      })

      const scanned = key('scan')
      await redis.set(scanned, 1)
      const found: string[] = []
      let cursor = '0'
      do {
        const [next, keys] = await redis.scan(cursor, { match: `${prefix}scan:*`, count: 1000 })
        found.push(...keys)
        cursor = String(next)
      } while (cursor !== '0')
      expect(found).toContain(scanned)
    })

    test('SET NX PX, INCR, EXPIRE, TTL, PTTL, MGET with nils, DEL counts', async () => {
      const redis = connect(encoding)
      const k = key('nx')
      expect(await redis.set(k, 'v', { nx: true, px: 5000 })).toBe('OK')
      expect(await redis.set(k, 'w', { nx: true, px: 5000 })).toBeNull()
      const pttl = await redis.pttl(k)
      expect(pttl).toBeGreaterThan(4000)
      expect(pttl).toBeLessThanOrEqual(5000)

      const c = key('counter')
      expect(await redis.incr(c)).toBe(1)
      expect(await redis.incrby(c, 41)).toBe(42)
      expect(await redis.incrbyfloat(c, 0.5)).toBe(42.5)
      expect(await redis.ttl(c)).toBe(-1)
      expect(await redis.expire(c, 100)).toBe(1)
      expect(await redis.ttl(c)).toBeGreaterThan(95)
      expect(await redis.ttl(key('missing'))).toBe(-2)

      const [a, b] = [key('mget'), key('mget')]
      await redis.mset({ [a]: 'one', [b]: 2 })
      expect(await redis.mget(a, key('missing'), b)).toStrictEqual(['one', null, 2])
      expect(await redis.del(a, b, key('missing'))).toBe(2)
    })
  })

  describe('wire format', () => {
    test('base64 encodes every string at every depth except a top-level OK status', async () => {
      const b64 = { 'upstash-encoding': 'base64' }
      const k = key('wire')
      expect((await raw('/', ['SET', k, 'bar'], b64)).json).toStrictEqual({ result: 'OK' })
      expect((await raw('/', ['GET', k], b64)).json).toStrictEqual({ result: 'YmFy' })
      expect((await raw('/', ['ECHO', 'OK'], b64)).json).toStrictEqual({ result: 'T0s=' })
      expect((await raw('/', ['PING'], b64)).json).toStrictEqual({ result: 'UE9ORw==' })
      expect((await raw('/', ['TYPE', k], b64)).json).toStrictEqual({ result: 'c3RyaW5n' })
      expect((await raw('/', ['GET', key('missing')], b64)).json).toStrictEqual({ result: null })
      expect((await raw('/', ['STRLEN', k], b64)).json).toStrictEqual({ result: 3 })
      const nested = await raw(
        '/',
        ['EVAL', "return {'a', {'b', 7}, redis.status_reply('OK')}", 0],
        b64,
      )
      expect(nested.json).toStrictEqual({ result: ['YQ==', ['Yg==', 7], 'T0s='] })
      expect((await raw('/', ['GET', k])).json).toStrictEqual({ result: 'bar' })
    })

    test('numbers and booleans as arguments, integers written with Redis digits', async () => {
      const k = key('wire-int')
      // A JSON number argument is stringified as JavaScript prints it.
      expect((await raw('/', ['SET', k, 2 ** 53])).json).toStrictEqual({ result: 'OK' })
      expect((await raw('/', ['GET', k])).json).toStrictEqual({ result: '9007199254740992' })
      // Integer replies keep Redis's digits even past 2^53 (JSON.parse would round them).
      expect((await raw('/', ['SET', k, '9007199254740993'])).json).toStrictEqual({ result: 'OK' })
      expect((await raw('/', ['INCRBY', k, 0])).text).toBe('{"result":9007199254740993}')
      const flag = key('wire-bool')
      await raw('/', ['SET', flag, true])
      expect((await raw('/', ['GET', flag])).json).toStrictEqual({ result: 'true' })
      expect((await raw('/', ['SET', k, 1.5, 'PX', 1000])).json).toStrictEqual({ result: 'OK' })
      expect((await raw('/', ['GET', k])).json).toStrictEqual({ result: '1.5' })
    })

    test('errors: 400 with the Redis text, per item in pipelines', async () => {
      const k = key('wire-err')
      await raw('/', ['LPUSH', k, 'a'])
      const wrong = await raw('/', ['GET', k])
      expect(wrong.status).toBe(400)
      expect(wrong.json).toStrictEqual({
        error: 'WRONGTYPE Operation against a key holding the wrong kind of value',
      })
      const pipeline = await raw('/pipeline', [
        ['LLEN', k],
        ['GET', k],
        ['BLPOP', k, 0],
      ])
      expect(pipeline.status).toBe(200)
      expect(pipeline.json).toStrictEqual([
        { result: 1 },
        { error: 'WRONGTYPE Operation against a key holding the wrong kind of value' },
        { error: "ERR Command is not available: 'BLPOP'" },
      ])
      expect((await raw('/', 'not json')).status).toBe(400)
      expect((await raw('/', [])).status).toBe(400)
    })

    test('path form with _token, POST body as last argument and query pairs', async () => {
      const k = key('path')
      const tokenQuery = `_token=${encodeURIComponent(standin.token)}`
      const set = await fetch(
        `${standin.url}/set/${encodeURIComponent(k)}/hello%2Fworld?${tokenQuery}`,
      )
      expect(await set.json()).toStrictEqual({ result: 'OK' })
      const get = await fetch(`${standin.url}/get/${encodeURIComponent(k)}?${tokenQuery}`)
      expect(await get.json()).toStrictEqual({ result: 'hello/world' })
      const post = await fetch(`${standin.url}/set/${encodeURIComponent(k)}?EX=100&${tokenQuery}`, {
        method: 'POST',
        body: '{"raw":"body"}',
      })
      expect(await post.json()).toStrictEqual({ result: 'OK' })
      expect((await raw('/', ['GET', k])).json).toStrictEqual({ result: '{"raw":"body"}' })
      expect((await raw('/', ['TTL', k])).json).toStrictEqual({ result: 100 })
    })

    test('answers carry an upstash-sync-token header the client can echo', async () => {
      const first = await raw('/', ['PING'])
      const token = first.headers.get('upstash-sync-token')
      expect(token).toMatch(/^\d+$/)
      const second = await raw('/', ['PING'], { 'upstash-sync-token': token ?? '' })
      expect(Number(second.headers.get('upstash-sync-token'))).toBeGreaterThan(Number(token))
      const redis = client('base64', { readYourWrites: true })
      const k = key('ryw')
      await redis.set(k, 'v')
      expect(await redis.get(k)).toBe('v')
    })

    test('401 Unauthorized on a wrong or missing token', async () => {
      const wrong = new Redis(
        { url: standin.url, token: 'nope', retry: false },
        { UPSTASH_DISABLE_TELEMETRY: '1' },
      )
      await expect(wrong.get(key('auth'))).rejects.toThrow(/^Unauthorized/)
      const res = await fetch(standin.url, { method: 'POST', body: '["PING"]' })
      expect(res.status).toBe(401)
      expect(await res.json()).toStrictEqual({ error: 'Unauthorized' })
    })

    test('the Node build of @upstash/redis works too', async () => {
      const redis = new NodeRedis({
        url: standin.url,
        token: standin.token,
        retry: false,
        enableTelemetry: false,
      })
      const k = key('node')
      await redis.set(k, { emoji: '🚀' })
      expect(await redis.get(k)).toStrictEqual({ emoji: '🚀' })
      const [, n] = await redis.pipeline().set(k, 1).incr(k).exec()
      expect(n).toBe(2)
    })
  })

  describe('pipelines and transactions', () => {
    test.each([
      ['base64', 'base64' as Encoding],
      ['plain', false as Encoding],
    ])('explicit pipeline with a failing item (%s)', async (_label, encoding) => {
      const redis = client(encoding)
      const k = key('pipe')
      const results = await redis
        .pipeline()
        .set(k, 'text')
        .incr(k)
        .get(k)
        .exec({ keepErrors: true })
      expect(results).toStrictEqual([
        { result: 'OK', error: undefined },
        { result: undefined, error: 'ERR value is not an integer or out of range' },
        { result: 'text', error: undefined },
      ])
      await expect(redis.pipeline().get(k).incr(k).exec()).rejects.toThrow(
        /Command 2 \[ incr \] failed: ERR value is not an integer/,
      )
    })

    test('auto-pipelining batches concurrent calls and isolates a failure', async () => {
      const redis = client('base64', { enableAutoPipelining: true })
      const [a, b] = [key('auto'), key('auto')]
      await redis.set(a, 'text')
      standin.faults.resetStats()
      const settled = await Promise.allSettled([
        redis.set(b, 41),
        redis.incr(b),
        redis.incr(a),
        redis.get(a),
        redis.get(b),
      ])
      expect(settled.map((s) => s.status)).toStrictEqual([
        'fulfilled',
        'fulfilled',
        'rejected',
        'fulfilled',
        'fulfilled',
      ])
      expect(settled.map((s) => (s.status === 'fulfilled' ? s.value : null))).toStrictEqual([
        'OK',
        42,
        null,
        'text',
        42,
      ])
      const failure = settled[2]
      expect(failure?.status === 'rejected' && String(failure.reason)).toMatch(
        /ERR value is not an integer/,
      )
      // One write batch and one read batch.
      expect(standin.faults.stats.requests).toBe(2)
      expect(standin.faults.stats.executed).toBe(5)
    })

    test('multi() runs atomically on its own connection', async () => {
      const redis = client()
      const k = key('multi')
      expect(await redis.multi().set(k, 1).incr(k).get(k).exec()).toStrictEqual(['OK', 2, 2])

      // Transactions of two INCRs each: MULTI/EXEC keeps every pair consecutive.
      const c = key('multi-counter')
      const pairs = await Promise.all(
        Array.from({ length: 20 }, () => redis.multi().incr(c).incr(c).exec()),
      )
      for (const [first, second] of pairs) expect(second).toBe(Number(first) + 1)
      expect(await redis.get(c)).toBe(40)
    })

    test('multi-exec: a failing command runs with the rest; a bad one discards everything', async () => {
      const k = key('tx')
      const partial = await raw('/multi-exec', [
        ['SET', k, 'text'],
        ['INCR', k],
        ['APPEND', k, '!'],
      ])
      expect(partial.status).toBe(200)
      expect(partial.json).toStrictEqual([
        { result: 'OK' },
        { error: 'ERR value is not an integer or out of range' },
        { result: 5 },
      ])

      const other = key('tx')
      standin.faults.resetStats()
      const arity = await raw('/multi-exec', [['SET', other, 'x'], ['GET']])
      expect(arity.status).toBe(400)
      expect(arity.json).toStrictEqual({
        error: "ERR wrong number of arguments for 'get' command",
      })
      const blocked = await raw('/multi-exec', [
        ['SET', other, 'x'],
        ['WATCH', other],
      ])
      expect(blocked.status).toBe(400)
      expect(blocked.json).toStrictEqual({ error: "ERR Command is not available: 'WATCH'" })
      expect(standin.faults.stats.executed).toBe(0)
      expect((await raw('/', ['EXISTS', other])).json).toStrictEqual({ result: 0 })

      await expect(client().multi().set(other, 1).exec()).resolves.toStrictEqual(['OK'])
    })
  })

  describe('errors and scripts', () => {
    test.each([
      // A single command answered 400: the client appends the command it sent.
      [false, /^WRONGTYPE Operation against a key holding the wrong kind of value, command was: /],
      // An auto-pipelined one: the per-item error of POST /pipeline.
      [true, /^Command failed: WRONGTYPE Operation against a key holding the wrong kind of value$/],
    ])(
      'WRONGTYPE surfaces as the client error with the Redis text (auto-pipelining %s)',
      async (auto, expected) => {
        const redis = client('base64', { enableAutoPipelining: auto })
        const k = key('wrongtype')
        await redis.lpush(k, 'a')
        const error = await redis.get(k).catch((e: unknown) => e)
        expect(error).toBeInstanceOf(Error)
        expect((error as Error).name).toBe('UpstashError')
        expect((error as Error).message).toMatch(expected)
      },
    )

    test('EVALSHA of an unknown sha gives NOSCRIPT', async () => {
      await expect(client().evalsha('0'.repeat(40), [], [])).rejects.toThrow(
        'NOSCRIPT No matching script. Please use EVAL.',
      )
    })

    test('createScript falls back from EVALSHA to EVAL once, then hits the cache', async () => {
      const redis = client()
      const script = redis.createScript<[string, string]>(
        `-- ${randomUUID()}\nreturn {KEYS[1], ARGV[1]}`,
      )
      const k = key('script')
      let result: unknown
      const first = await watchCommands(async () => {
        result = await script.exec([k], ['arg'])
      })
      expect(result).toStrictEqual([k, 'arg'])
      expect(first.map((c) => [c.argv[0], c.error])).toStrictEqual([
        ['evalsha', 'NOSCRIPT No matching script. Please use EVAL.'],
        ['eval', null],
      ])
      const second = await watchCommands(() => script.exec([k], ['again']))
      expect(second.map((c) => [c.argv[0], c.error])).toStrictEqual([['evalsha', null]])
      expect(await redis.evalsha(script.sha1, [k], ['direct'])).toStrictEqual([k, 'direct'])
    })

    test('Upstash-only shebang flags are accepted and SHAs stay the client-side ones', async () => {
      const redis = client()
      const body = `#!lua flags=allow-key-locking\n-- ${randomUUID()}\nreturn redis.call('INCR', KEYS[1])`
      expect(rewriteScriptForRedis(body)?.startsWith('#!lua\n')).toBe(true)
      expect(rewriteScriptForRedis('#!lua flags=no-writes,allow-key-locking\nreturn 1')).toBe(
        '#!lua flags=no-writes\nreturn 1',
      )
      expect(rewriteScriptForRedis('return 1')).toBeUndefined()

      const k = key('locking')
      const sha = await redis.scriptLoad(body)
      const script = redis.createScript<number>(body)
      await script.exec([k], []) // computes its SHA-1 on first use
      expect(sha).toBe(script.sha1)
      expect(await redis.scriptExists(sha)).toStrictEqual([1])
      expect(await redis.evalsha(sha, [k], [])).toBe(2)
      expect(await redis.eval(body, [k], [])).toBe(3)
    })
  })

  describe('@upstash/ratelimit', () => {
    test('slidingWindow allows exactly the limit, first call EVALSHA → NOSCRIPT → EVAL', async () => {
      const ratelimit = new Ratelimit({
        redis: client(), // auto-pipelined: NOSCRIPT as a /pipeline item error
        limiter: Ratelimit.slidingWindow(3, '1 h'),
        prefix: `${prefix}rl:sliding`,
        analytics: false,
        enableProtection: false,
        ephemeralCache: false,
      })
      const commands = await watchCommands(() => ratelimit.limit('user-1'))
      expect(commands.map((c) => [c.argv[0], c.error?.split(' ')[0] ?? null])).toStrictEqual([
        ['evalsha', 'NOSCRIPT'],
        ['eval', null],
      ])
      expect(commands.every((c) => c.via === 'pipeline')).toBe(true)
      const rest = [
        await ratelimit.limit('user-1'),
        await ratelimit.limit('user-1'),
        await ratelimit.limit('user-1'),
      ]
      expect(rest.map((r) => [r.success, r.remaining])).toStrictEqual([
        [true, 1],
        [true, 0],
        [false, 0],
      ])
      const denied = rest[2]!
      expect(denied.limit).toBe(3)
      expect(denied.reset).toBeGreaterThan(Date.now())
      expect(denied.reset).toBeLessThanOrEqual(Date.now() + 3_600_000)
      expect((await ratelimit.limit('user-2')).success).toBe(true)
      const cached = await watchCommands(() => ratelimit.limit('user-3'))
      expect(cached.map((c) => [c.argv[0], c.error])).toStrictEqual([['evalsha', null]])
    })

    test('fixedWindow allows exactly the limit and resets at the window end', async () => {
      const ratelimit = new Ratelimit({
        redis: client(false, { enableAutoPipelining: false }), // single-command path: 400 NOSCRIPT
        limiter: Ratelimit.fixedWindow(2, '1 h'),
        prefix: `${prefix}rl:fixed`,
        analytics: false,
        enableProtection: false,
        ephemeralCache: false,
      })
      const commands = await watchCommands(() => ratelimit.limit('user-1'))
      expect(commands.map((c) => [c.argv[0], c.via, c.error?.split(' ')[0] ?? null])).toStrictEqual(
        [
          ['evalsha', 'command', 'NOSCRIPT'],
          ['eval', 'command', null],
        ],
      )
      const second = await ratelimit.limit('user-1')
      const third = await ratelimit.limit('user-1')
      expect([second.success, second.remaining]).toStrictEqual([true, 0])
      expect([third.success, third.remaining]).toStrictEqual([false, 0])
      const windowMs = 3_600_000
      expect(third.reset).toBe((Math.floor(Date.now() / windowMs) + 1) * windowMs)
    })
  })

  describe('fault modes', () => {
    test('latency delays every answer', async () => {
      const redis = client()
      standin.faults.set({ latencyMs: 150 })
      standin.faults.resetStats()
      const started = performance.now()
      await redis.set(key('latency'), 'v')
      expect(performance.now() - started).toBeGreaterThanOrEqual(140)
      expect(standin.faults.stats).toMatchObject({ requests: 1, executed: 1, injectedErrors: 0 })
    })

    test('errorRate 0.5 fails exactly every other request without executing it', async () => {
      const redis = client()
      const k = key('errors')
      standin.faults.set({ errorRate: 0.5 })
      standin.faults.resetStats()
      const outcomes: string[] = []
      for (let i = 0; i < 6; i++) {
        outcomes.push(
          await redis.incr(k).then(
            () => 'ok',
            (error: unknown) => String(error),
          ),
        )
      }
      expect(outcomes.filter((_, i) => i % 2 === 0)).toStrictEqual(['ok', 'ok', 'ok'])
      for (const failure of outcomes.filter((_, i) => i % 2 === 1)) {
        expect(failure).toMatch(/UpstashError: ERR service unavailable \(injected fault\)/)
      }
      expect(standin.faults.stats).toMatchObject({ requests: 6, injectedErrors: 3, executed: 3 })
      standin.faults.reset()
      expect(await redis.get(k)).toBe(3)
      const injected = await (async () => {
        standin.faults.set({ errorRate: 1 })
        return raw('/', ['PING'])
      })()
      expect(injected.status).toBe(503)
      expect(injected.json).toStrictEqual({ error: 'ERR service unavailable (injected fault)' })
    })

    test('hang never answers; the client aborts and clearing the plan recovers', async () => {
      const redis = client('base64', { signal: () => AbortSignal.timeout(200) })
      const k = key('hang')
      standin.faults.set({ hang: true })
      standin.faults.resetStats()
      const started = performance.now()
      await expect(redis.set(k, 'v')).rejects.toThrow(/abort|timeout/i)
      expect(performance.now() - started).toBeLessThan(1000)

      // A request still hanging when the plan clears gets its connection dropped; the client
      // (even with `retry: false`) tries once more, which now succeeds.
      const pending = client('base64', { enableAutoPipelining: false }).get(k)
      await new Promise((resolve) => setTimeout(resolve, 50))
      expect(standin.faults.stats).toMatchObject({ requests: 2, hung: 2, executed: 0 })
      standin.faults.reset()
      await expect(pending).resolves.toBeNull()
      expect(standin.faults.stats).toMatchObject({ requests: 3, hung: 2, executed: 1 })

      const noRetry = client('base64', { retry: { retries: 0 } })
      standin.faults.set({ hang: true })
      const dropped = noRetry.get(k)
      await new Promise((resolve) => setTimeout(resolve, 50))
      standin.faults.reset()
      await expect(dropped).rejects.toThrow()

      expect(await redis.set(k, 'v')).toBe('OK')
      expect(await redis.get(k)).toBe('v')
    })

    test('refuse drops the listener; clearing it listens again on the same port', async () => {
      const redis = client()
      const k = key('refuse')
      await redis.set(k, 'before')
      standin.faults.set({ refuse: true })
      standin.faults.resetStats()
      await expect(redis.get(k)).rejects.toThrow(/fetch failed/)
      await expect(fetch(standin.url, { method: 'POST' })).rejects.toThrow()
      expect(await reachable(standin.url)).toBe(false)
      expect(standin.faults.stats).toMatchObject({ requests: 0, executed: 0 })
      await standin.faults.reset() // resolves once it listens again
      expect(await reachable(standin.url)).toBe(true)
      expect(await redis.get(k)).toBe('before')
    })

    test('close() resolves promptly with a hung request and drops it', async () => {
      const other = await startUpstashRestStandin({ redisUrl: REDIS_URL, token: 'fixed-token' })
      expect(other.token).toBe('fixed-token')
      const redis = new Redis(
        { url: other.url, token: other.token, retry: false },
        { UPSTASH_DISABLE_TELEMETRY: '1' },
      )
      expect(await redis.ping()).toBe('PONG')
      other.faults.set({ hang: true })
      const hung = redis.get(key('close'))
      await new Promise((resolve) => setTimeout(resolve, 50))
      const started = performance.now()
      await other.close()
      expect(performance.now() - started).toBeLessThan(500)
      await expect(hung).rejects.toThrow()
      await expect(other.close()).resolves.toBeUndefined()
    })
  })
})
