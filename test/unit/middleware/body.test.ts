// jsonBody: media type (415), JSON syntax (400 invalid_json), schema (400 with field paths).
import { Hono } from 'hono'
import { describe, expect, test } from 'vitest'
import * as z from 'zod/mini'
import { createApp } from '../../../src/app.ts'
import { ProblemError } from '../../../src/contract/problem.ts'
import { jsonBody } from '../../../src/http/body.ts'
import type { AppEnv } from '../../../src/http/context.ts'
import { problemResponse } from '../../../src/http/problem.ts'

const schema = z.strictObject({
  name: z.string().check(z.minLength(1)),
  items: z.array(z.strictObject({ n: z.number().check(z.int(), z.minimum(0), z.maximum(100)) })),
})

const app = new Hono<AppEnv>()
  .post('/things', jsonBody(schema), (c) => c.json(c.req.valid('json')))
  .post('/optional', jsonBody(z.optional(schema), { optional: true }), (c) =>
    c.json({ got: c.req.valid('json') ?? null }),
  )
app.onError((err, c) =>
  err instanceof ProblemError ? problemResponse(c, err.problem, 'test') : c.text('boom', 500),
)

const post = (path: string, body: string | undefined, type?: string) =>
  app.request(path, {
    method: 'POST',
    ...(body === undefined ? {} : { body }),
    headers: type ? { 'Content-Type': type } : {},
  })

describe('jsonBody', () => {
  test('accepts a valid body, typed', async () => {
    const res = await post(
      '/things',
      '{"name":"a","items":[{"n":1}]}',
      'application/json; charset=utf-8',
    )
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ name: 'a', items: [{ n: 1 }] })
  })

  test.each([
    ['text/plain', '{"name":"a","items":[]}'],
    ['application/x-www-form-urlencoded', 'name=a'],
    [undefined, '{"name":"a","items":[]}'],
  ])('415 for content type %s', async (type, body) => {
    const res = await post('/things', body, type)
    expect(res.status).toBe(415)
    expect(res.headers.get('accept-post')).toBe('application/json')
    expect((await res.json()).code).toBe('unsupported_media_type')
  })

  test('400 invalid_json for malformed JSON', async () => {
    const res = await post('/things', '{"name":', 'application/json')
    expect(res.status).toBe(400)
    expect((await res.json()).code).toBe('invalid_json')
  })

  test('400 with a path for every bad or unknown field', async () => {
    const res = await post(
      '/things',
      '{"name":"","items":[{"n":1},{"n":101,"x":1}],"extra":true}',
      'application/json',
    )
    expect(res.status).toBe(400)
    const body = await res.json()
    expect(body.code).toBe('validation_failed')
    const paths = body.errors.map((e: { path: string }) => e.path).sort()
    expect(paths).toEqual(['extra', 'items.1.n', 'items.1.x', 'name'])
  })

  test('an optional body may be absent, but when present it is validated', async () => {
    expect(await (await post('/optional', undefined)).json()).toEqual({ got: null })
    expect((await post('/optional', '{"bad":1}', 'application/json')).status).toBe(400)
  })
})

describe('error boundary', () => {
  test('an unexpected error is a 500 problem without internals, and is logged redacted', async () => {
    const lines: string[] = []
    const original = console.log
    console.log = (line: string) => void lines.push(line)
    try {
      const app = createApp()
      app.get('/explode', () => {
        throw new Error('connect to postgres://u:hunter2@db/x failed')
      })
      const res = await app.request('/explode', {}, { APP_ENV: 'development', LOG_LEVEL: 'error' })
      expect(res.status).toBe(500)
      expect(res.headers.get('content-type')).toBe('application/problem+json')
      const text = await res.text()
      expect(JSON.parse(text)).toMatchObject({ code: 'internal_error', status: 500 })
      expect(text).not.toMatch(/hunter2|postgres|stack|at /)
    } finally {
      console.log = original
    }
    const logged = lines.join('\n')
    expect(logged).toContain('unhandled error')
    expect(logged).not.toContain('hunter2')
  })
})
