// How Redis failures are read (src/redis.ts): what counts as an outage (the breaker, the
// fallbacks) and what a failed write may have done (a 503's honest code). The errors are the
// real @upstash/redis client's, answering requests from a server that plays Upstash, a gateway
// in front of it, or a dead port.
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { Secret } from '../../../src/kernel/secret.ts'
import { createRedisStore, isRedisOutage, redisCommandOutcome } from '../../../src/redis.ts'
import { CircuitOpenError } from '../../../src/resilience/policy.ts'

/** Path → [status, body, content type]; the next request to that path gets it. */
let answer: [number, string, string?] = [200, '{"result":"OK"}']
let server: Server
let url: string

beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      const [status, body, type = 'application/json'] = answer
      res.writeHead(status, { 'Content-Type': type })
      res.end(body)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())))

const store = (at = url, timeoutMs = 1000) =>
  createRedisStore({
    config: { url: at, token: new Secret('token') },
    keyPrefix: 't:',
    timeoutMs,
  })

/** The error a SET (auto-pipelined, like every command the app sends) fails with. */
async function failure(status: number, body: string, type?: string): Promise<unknown> {
  answer = [status, body, type]
  try {
    await store().client.set('k', 'v')
  } catch (err) {
    return err
  }
  throw new Error('the command did not fail')
}

/** The same through an explicit pipeline (stats, dead letters). */
async function pipelineFailure(body: string): Promise<unknown> {
  answer = [200, body]
  try {
    const p = store().client.pipeline()
    p.get('a')
    p.evalsha('0'.repeat(40), [], [])
    await p.exec()
  } catch (err) {
    return err
  }
  throw new Error('the pipeline did not fail')
}

describe('Redis failures', () => {
  test('a gateway answering 5xx after Redis may have run the write: an outage, outcome unknown', async () => {
    for (const [status, body, type] of [
      [502, '{"error":"Bad Gateway"}'],
      [504, '{"message":"upstream timed out"}'], // no `error`: the client says "undefined"
      [500, '{"error":"Server error"}'],
      [502, '<html>Bad Gateway</html>', 'text/html'],
    ] as const) {
      const err = await failure(status, body, type)
      expect(isRedisOutage(err), body).toBe(true)
      expect(redisCommandOutcome(err), body).toBe('unknown')
    }
  })

  test('Redis refusing the command: not an outage, certainly not applied', async () => {
    for (const reply of [
      'ERR wrong number of arguments for command',
      'WRONGTYPE Operation against a key holding the wrong kind of value',
      'ERR max request size exceeded',
    ]) {
      const err = await failure(400, JSON.stringify({ error: reply }))
      expect(isRedisOutage(err), reply).toBe(false)
      expect(redisCommandOutcome(err), reply).toBe('none')
    }
  })

  test('Upstash refusing every command (plan limits, credentials): an outage, not applied', async () => {
    for (const reply of [
      'ERR max daily request limit exceeded. Limit: 10000, Usage: 10000',
      'ERR max requests limit exceeded. Limit: 500000, Usage: 500000',
      'ERR max concurrent connections exceeded',
      'ERR DB capacity quota exceeded',
      'NOAUTH Authentication required',
      'WRONGPASS invalid or missing auth token',
      'OOM command not allowed when used memory > maxmemory',
      'LOADING Redis is loading the dataset in memory',
    ]) {
      const err = await failure(400, JSON.stringify({ error: reply }))
      expect(isRedisOutage(err), reply).toBe(true)
      expect(redisCommandOutcome(err), reply).toBe('none')
    }
  })

  test('a script that failed while it ran may have written before it failed: unknown', async () => {
    const err = await failure(
      400,
      JSON.stringify({ error: 'ERR user_script:3: Script attempted to access a non local key' }),
    )
    expect(isRedisOutage(err)).toBe(false)
    expect(redisCommandOutcome(err)).toBe('unknown')
  })

  test('a reply inside a pipeline is read like a lone one', async () => {
    const err = await pipelineFailure(
      '[{"result":null},{"error":"NOSCRIPT No matching script. Please use EVAL."}]',
    )
    expect(String((err as Error).message)).toMatch(/^Command 2 \[ evalsha \] failed: NOSCRIPT/)
    expect(isRedisOutage(err)).toBe(false)
    expect(redisCommandOutcome(err)).toBe('none')
  })

  test('a timeout: an outage, unknown; a refused connection or an open circuit: none', async () => {
    answer = [200, '{"result":"OK"}']
    const hanging = createServer(() => {}) // accepts, never answers
    await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve))
    const at = `http://127.0.0.1:${(hanging.address() as AddressInfo).port}`
    const timedOut = await store(at, 100)
      .client.set('k', 'v')
      .catch((e: unknown) => e)
    hanging.closeAllConnections()
    await new Promise<void>((resolve) => hanging.close(() => resolve()))
    expect(isRedisOutage(timedOut)).toBe(true)
    expect(redisCommandOutcome(timedOut)).toBe('unknown')

    const refused = await store(at)
      .client.set('k', 'v')
      .catch((e: unknown) => e)
    expect(isRedisOutage(refused)).toBe(true)
    expect(redisCommandOutcome(refused)).toBe('none')

    const open = new CircuitOpenError('redis', Date.now() + 1000)
    expect(isRedisOutage(open)).toBe(true)
    expect(redisCommandOutcome(open)).toBe('none')
  })
})
