import { expect, test } from 'vitest'
import { createLogger, redact } from '../../src/kernel/log.ts'
import { Secret } from '../../src/kernel/secret.ts'

test('credential-shaped values and keys are masked in every log line', () => {
  const lines: string[] = []
  const log = createLogger({ level: 'debug', sink: (l) => lines.push(l) })
  const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJlLXZhbHVl'
  log.info('request', {
    authorization: 'Bearer abc.def',
    nested: { agent_secret: 'plain', note: `token was ${jwt}` },
    url: 'postgres://user:hunter2@db.example.com/app',
    header: 'Basic dXNlcjpwYXNz',
    secret: new Secret('s3cr3t-value'),
    token_type: 'Bearer',
  })
  const text = lines.join('\n')
  for (const leaked of ['abc.def', 'plain', jwt, 'hunter2', 'dXNlcjpwYXNz', 's3cr3t-value']) {
    expect(text).not.toContain(leaked)
  }
  const record = JSON.parse(lines[0]!)
  expect(record).toMatchObject({ level: 'info', msg: 'request', token_type: 'Bearer' })
  expect(record.url).toBe('postgres://user:[redacted]@db.example.com/app')
})

test('levels below the threshold are dropped', () => {
  const lines: string[] = []
  const log = createLogger({ level: 'warn', sink: (l) => lines.push(l) })
  log.info('quiet')
  log.warn('loud')
  expect(lines.map((l) => JSON.parse(l).msg)).toEqual(['loud'])
})

test('errors keep their name and code, never their message or stack', () => {
  const pg = Object.assign(new Error('invalid input syntax: "marker-1"'), {
    name: 'NeonDbError',
    code: '22P02',
    detail: 'Key (id)=(marker-1)',
  })
  const redisError = Object.assign(new Error('ERR bad thing, command was: [["set","marker-2"]]'), {
    name: 'UpstashError',
  })
  const http = Object.assign(new Error('Server error (HTTP status 503): marker-3'), {
    name: 'NeonDbError',
  })
  const wrapped = new Error('outer marker-4', { cause: redisError })
  expect(redact({ pg, redisError, http, wrapped })).toEqual({
    pg: { name: 'NeonDbError', code: '22P02' },
    redisError: { name: 'UpstashError', code: 'ERR' },
    http: { name: 'NeonDbError', status: 503 },
    wrapped: { name: 'Error', cause: { name: 'UpstashError', code: 'ERR' } },
  })
  const lines: string[] = []
  createLogger({ level: 'debug', sink: (l) => lines.push(l) }).error('failed', {
    error: wrapped,
    pg,
  })
  expect(lines.join('\n')).not.toMatch(/marker/)
})
