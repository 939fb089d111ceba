// The OpenAPI document: valid OpenAPI 3.1, complete (every route of the app, nothing more),
// every schema usable by @cfworker/json-schema, examples that pass their own schemas, request
// schemas that are the zod schemas themselves, and the two routes that serve it.
import { type Schema as CfSchema, dereference, format, validate } from '@cfworker/json-schema'
import { Validator } from '@seriousme/openapi-schema-validator'
import { describe, expect, expectTypeOf, test } from 'vitest'
import * as z from 'zod/mini'
import { MAX_BODY_BYTES as APP_MAX_BODY_BYTES, createApp } from '../../../src/app.ts'
import { heartbeat } from '../../../src/contract/health.ts'
import type * as responses from '../../../src/contract/index.ts'
import type {
  BatchStatus,
  ExchangedTokenResponse,
  HealthReport,
  ProblemBody,
  ProgressAccepted,
  PublicHealth,
  TokenResponse,
  UserContextResponse,
} from '../../../src/contract/index.ts'
import { PROBLEM_TYPES } from '../../../src/contract/problems.ts'
import { progressUpdate } from '../../../src/contract/progress.ts'
import { jsonClientCredentials, jsonRefresh, jsonRevoke } from '../../../src/contract/token.ts'
import { MAX_BODY_BYTES } from '../../../src/openapi/document.ts'
import {
  buildDocument,
  METHODS,
  type MediaType,
  type OpenApiDocument,
  openApiDocument,
  type Schema,
} from '../../../src/openapi/generate.ts'
import { OPERATIONS } from '../../../src/routes/index.ts'
import { checkResponse } from '../../support/contract.ts'
import { referenceDocument } from '../../support/openapi-reference.ts'

const doc = buildDocument(OPERATIONS, '0.0.0-test')
const BASE = 'https://agent-api.test/openapi.json'

/** A copy dereferenced for @cfworker/json-schema, with the lookup its refs resolve in. */
function compiled() {
  const copy = JSON.parse(JSON.stringify(doc)) as OpenApiDocument
  return { copy, lookup: dereference({ ...copy, $id: BASE } as CfSchema) }
}

/** Every value in the document, with its JSON pointer. */
function* walk(node: unknown, pointer = ''): Generator<[string, unknown]> {
  yield [pointer, node]
  if (node && typeof node === 'object') {
    for (const [key, value] of Object.entries(node)) {
      yield* walk(value, `${pointer}/${key.replaceAll('~', '~0').replaceAll('/', '~1')}`)
    }
  }
}

/** The media types, parameters and headers: everything holding a `schema`. */
function schemaSites(root: OpenApiDocument): [string, Schema][] {
  const sites: [string, Schema][] = []
  for (const [pointer, node] of walk(root)) {
    if (pointer.startsWith('/components/schemas/') && pointer.split('/').length === 4) {
      sites.push([pointer, node as Schema])
    }
    if (pointer.endsWith('/schema') && !pointer.startsWith('/components/schemas/')) {
      sites.push([pointer, node as Schema])
    }
  }
  return sites
}

function operations(root: OpenApiDocument) {
  return Object.entries(root.paths).flatMap(([path, item]) =>
    METHODS.flatMap((method) => {
      const op = item[method]
      return op ? [{ path, method, op }] : []
    }),
  )
}

function without(schema: unknown, key: string): unknown {
  if (Array.isArray(schema)) return schema.map((s) => without(s, key))
  if (schema && typeof schema === 'object') {
    return Object.fromEntries(
      Object.entries(schema)
        .filter(([k]) => k !== key)
        .map(([k, v]) => [k, without(v, key)]),
    )
  }
  return schema
}

describe('the OpenAPI document', () => {
  test('is valid OpenAPI 3.1', async () => {
    const result = await new Validator().validate(doc as unknown as Record<string, unknown>)
    expect(result.errors ?? []).toEqual([])
    expect(result.valid).toBe(true)
    expect(doc.openapi).toBe('3.1.0')
  })

  test('is, member for member, what hono-openapi generates from the same operations', async () => {
    const reference = await referenceDocument(OPERATIONS, '0.0.0-test')
    expect(JSON.parse(JSON.stringify(doc))).toEqual(JSON.parse(JSON.stringify(reference)))
  })

  test('documents every route of the app, and nothing the app does not serve', () => {
    const served = new Set(
      createApp()
        .routes.filter((r) => r.method !== 'ALL')
        .map((r) => `${r.method} ${r.path.replace(/:(\w+)/g, '{$1}')}`),
    )
    const documented = new Set(
      operations(doc).map(({ path, method }) => `${method.toUpperCase()} ${path}`),
    )
    expect([...documented].sort()).toEqual([...served].sort())
    expect(served.size).toBe(23)
  })

  test('every operation documents its errors and every path parameter', () => {
    for (const { path, method, op } of operations(doc)) {
      const where = `${method} ${path}`
      expect(Object.keys(op.responses), where).toContain('500')
      if (op.requestBody) expect(Object.keys(op.responses), where).toContain('413')
      if (op.security?.some((s) => 'bearerAuth' in s && !('clientBasic' in s))) {
        expect(Object.keys(op.responses), where).toEqual(
          expect.arrayContaining(['401', '429', '503']),
        )
      }
      const params = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1])
      const item = doc.paths[path]!
      const declared = [...(item.parameters ?? []), ...(op.parameters ?? [])].map((p) =>
        '$ref' in p ? doc.components.parameters[p.$ref.split('/').pop()!]!.name : p.name,
      )
      for (const param of params) expect(declared, where).toContain(param)
    }
  })

  test('every schema works with @cfworker/json-schema: refs resolve, patterns and formats are known', () => {
    const { copy, lookup } = compiled()
    for (const [pointer, node] of walk(copy)) {
      if (!node || typeof node !== 'object') continue
      const { $ref, pattern, format: name } = node as Schema
      if (typeof $ref === 'string') {
        const target = $ref.startsWith('#/components/schemas/')
          ? lookup[new URL($ref, BASE).href]
          : [...walk(copy)].find(([p]) => `#${p}` === $ref)?.[1]
        expect(target, `${pointer}: ${$ref}`).toBeDefined()
      }
      if (typeof pattern === 'string' && !pointer.includes('/example')) {
        expect(() => new RegExp(pattern, 'u'), pointer).not.toThrow()
      }
      if (typeof name === 'string') expect(Object.keys(format), pointer).toContain(name)
    }
    const sites = schemaSites(copy)
    expect(sites.length).toBeGreaterThan(60)
    for (const [pointer, schema] of sites) {
      for (const sample of [null, {}, [], 'x', 0]) {
        expect(
          () => validate(sample, schema as CfSchema, '2020-12', lookup, false),
          pointer,
        ).not.toThrow()
      }
    }
  })

  test('every example passes its own schema', () => {
    const { copy, lookup } = compiled()
    let checked = 0
    for (const [pointer, node] of walk(copy)) {
      if (!pointer.includes('/content/') || pointer.split('/').at(-2) !== 'content') continue
      const media = node as MediaType
      const examples = [
        ...(media.example === undefined ? [] : [media.example]),
        ...Object.values(media.examples ?? {}).map((e) => e.value),
      ]
      for (const example of examples) {
        const result = validate(example, media.schema as CfSchema, '2020-12', lookup, false)
        expect(result.errors, pointer).toEqual([])
        checked++
      }
    }
    expect(checked).toBeGreaterThanOrEqual(10)
  })

  test('request schemas are the zod schemas that validate requests, converted', () => {
    const same = {
      TokenRequestClientCredentials: jsonClientCredentials,
      TokenRequestRefresh: jsonRefresh,
      RevokeRequest: jsonRevoke,
      ProgressUpdate: progressUpdate,
      Heartbeat: heartbeat,
    }
    for (const [name, schema] of Object.entries(same)) {
      // Each schema is registered under its component name and carries its own descriptions,
      // so zod converts it to a reference into `$defs`: compare with that definition.
      const { $defs } = z.toJSONSchema(schema, { target: 'draft-2020-12', io: 'input' })
      const converted = without($defs?.[name], 'description')
      expect(converted, name).toBeDefined()
      expect(without(doc.components.schemas[name], 'description'), name).toEqual(converted)
    }
  })

  test('the JSON Schema and zod agree on what a progress update is', () => {
    const { copy, lookup } = compiled()
    const schema = copy.components.schemas.ProgressUpdate as CfSchema
    const valid = {
      user_id: 'demo-user-1',
      task_id: 't',
      status: 'completed',
      progress: 100,
      occurred_at: '2026-11-26T09:00:00+01:00',
    }
    const bodies: unknown[] = [
      valid,
      { ...valid, data: { a: 1 }, idempotency_key: 'k' },
      { ...valid, extra: 1 },
      { ...valid, progress: 101 },
      { ...valid, progress: 1.5 },
      { ...valid, status: 'done' },
      { ...valid, user_id: '' },
      { ...valid, task_id: 'x'.repeat(129) },
      { ...valid, occurred_at: '2026-11-26 09:00' },
      { ...valid, occurred_at: '2026-02-30T09:00:00Z' },
      { ...valid, idempotency_key: '' },
      { ...valid, data: [] },
      { user_id: 'u' },
      [],
      null,
    ]
    for (const body of bodies) {
      const json = validate(body, schema, '2020-12', lookup).valid
      expect(json, JSON.stringify(body)).toBe(progressUpdate.safeParse(body).success)
    }
  })

  test('problem codes: each response lists catalogued codes; each code is answered somewhere', () => {
    const catalogued = new Set<string>(PROBLEM_TYPES.map((p) => p.code))
    const used = new Set<string>()
    for (const [pointer, node] of walk(doc)) {
      if (!pointer.endsWith('/x-problem-codes')) continue
      for (const code of node as string[]) {
        expect(catalogued, pointer).toContain(code)
        used.add(code)
      }
    }
    // bad_request comes from the framework (an HTTPException below 500) on no particular route.
    expect([...catalogued].filter((c) => !used.has(c))).toEqual(['bad_request'])
    for (const p of doc['x-problem-types']) expect(p.type).toBe(`/problems/${p.code}`)
  })

  test('says what the code does: revoking a refresh token ends its family’s access tokens; an uncounted flush remainder is null', () => {
    // Both were once false in the served document (issue 12): pinned here.
    const revoke = doc.paths['/api/v1/agent/token/revoke']!.post!
    expect(revoke.description).toMatch(
      /refresh token \(with its whole family and every access token the family issued\)/,
    )
    expect(revoke.description).not.toMatch(/nothing else/)
    const refresh = doc.components.schemas.TokenRequestRefresh as {
      properties: Record<string, Schema>
    }
    expect(refresh.properties.refresh_token!.description).toMatch(/the access tokens it issued/)

    const { copy, lookup } = compiled()
    const flush = copy.components.schemas.FlushReport as { properties: Record<string, Schema> }
    const remaining = flush.properties.remaining!
    expect(validate(null, remaining as CfSchema, '2020-12', lookup).valid).toBe(true)
    expect(validate(-1, remaining as CfSchema, '2020-12', lookup).valid).toBe(false)
    expect(remaining.description).toMatch(/null when they could not be counted/)
    expect(JSON.stringify(doc)).not.toMatch(/0 when unknown/)
  })

  test('states the body limit the app enforces', () => {
    expect(MAX_BODY_BYTES).toBe(APP_MAX_BODY_BYTES)
  })

  test('is built once per isolate and version', () => {
    expect(openApiDocument(OPERATIONS, '1.2.3')).toBe(openApiDocument(OPERATIONS, '1.2.3'))
    expect(openApiDocument(OPERATIONS, '1.2.3').info.version).toBe('1.2.3')
  })
})

describe('GET /openapi.json and GET /docs', () => {
  const app = createApp()
  const get = async (path: string) => {
    const res = await app.request(
      path,
      { headers: { 'X-Request-Id': 'docs-test' } },
      { APP_ENV: 'development', LOG_LEVEL: 'error' }, // no log line per request
    )
    await checkResponse('GET', `https://agent-api.test${path}`, res.clone())
    return res
  }

  test('/openapi.json serves the document, cacheable', async () => {
    const res = await get('/openapi.json')
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('application/json')
    expect(res.headers.get('cache-control')).toBe('public, max-age=300')
    const served = (await res.json()) as OpenApiDocument
    expect(served).toEqual(
      JSON.parse(JSON.stringify(openApiDocument(OPERATIONS, served.info.version))),
    )
    // Other routes keep the API's own policy: only /docs relaxes it.
    expect(res.headers.get('content-security-policy')).toBe(
      "default-src 'none'; frame-ancestors 'none'",
    )
  })

  test('/docs is a page over /openapi.json with its own, narrow CSP', async () => {
    const res = await get('/docs')
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/^text\/html/)
    expect(res.headers.get('x-frame-options')).toBe('DENY')
    const html = await res.text()
    expect(html).toContain("url: '/openapi.json'")
    const csp = res.headers.get('content-security-policy')!
    expect(csp).toContain("default-src 'none'")
    expect(csp).toContain("frame-ancestors 'none'")
    expect(csp).toContain("connect-src 'self'")
    expect(csp).not.toContain('unsafe')
    // The inline script is allowed by its hash, and only it.
    const inline = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1]!)
    expect(inline).toHaveLength(1)
    const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(inline[0]))
    const hash = btoa(String.fromCharCode(...new Uint8Array(digest)))
    expect(csp).toContain(`'sha256-${hash}'`)
    // Scripts and styles come from this origin only (offline: no CDN)...
    expect(csp).toMatch(/script-src 'self' 'sha256-[^']+'(;|$)/)
    expect(csp).toMatch(/style-src 'self'(;|$)/)
    // ...pinned to a version and carrying subresource integrity.
    const tags = html.match(/<(script|link) [^>]*(src|href)=[^>]*>/g) ?? []
    expect(tags).toHaveLength(2)
    for (const tag of tags) {
      expect(tag).toMatch(/(src|href)="\/assets\/swagger-ui-\d+\.\d+\.\d+\/swagger-ui[\w.-]+"/)
      expect(tag).toMatch(/integrity="sha384-[A-Za-z0-9+/=]{64}"/)
      expect(tag).toContain('crossorigin="anonymous"')
    }
  })

  test('the contract check refuses what the document does not describe', async () => {
    const problem = (status: number, body: object, headers: Record<string, string> = {}) =>
      new Response(JSON.stringify(body), {
        status,
        headers: {
          'Content-Type': 'application/problem+json',
          'X-Request-Id': 'r1',
          'Server-Timing': 'total;dur=1.0',
          'Cache-Control': 'no-store',
          ...headers,
        },
      })
    const url = 'https://agent-api.test/api/v1/agent/progress'
    const body = {
      type: '/problems/validation_failed',
      title: 'Bad Request',
      status: 400,
      code: 'validation_failed',
      request_id: 'r1',
      errors: [{ path: 'progress', message: 'Too big' }],
    }
    await expect(checkResponse('POST', url, problem(400, body))).resolves.toBeUndefined()
    await expect(
      checkResponse('POST', url, problem(400, { ...body, stack: 'at x' })),
    ).rejects.toThrow(/stack/)
    await expect(
      checkResponse('POST', url, problem(400, { ...body, code: 'nope' })),
    ).rejects.toThrow(/code/)
    await expect(checkResponse('POST', url, problem(418, body))).rejects.toThrow(/418/)
    await expect(
      checkResponse('POST', url, problem(400, body, { 'X-Request-Id': '' })),
    ).rejects.toThrow(/X-Request-Id/)
    await expect(
      checkResponse('GET', 'https://agent-api.test/nowhere', problem(400, body)),
    ).rejects.toThrow(/no operation/)
  })
})

// Compile-time: each response schema and the interface the routes build their bodies from
// describe the same shape (tsc checks these; they do nothing at run time).
test('response schemas match the interfaces in src/contract', () => {
  // The answers' schemas are built on first use: each is a function returning the schema.
  type Schemas = { [K in keyof typeof responses]: (typeof responses)[K] }
  type Out<K extends keyof Schemas> = Schemas[K] extends () => infer S ? z.output<S> : never
  // One schema documents both answers: with a refresh token, and a token exchange's without.
  expectTypeOf<TokenResponse>().toExtend<Out<'tokenResponse'>>()
  expectTypeOf<ExchangedTokenResponse>().toExtend<Out<'tokenResponse'>>()
  expectTypeOf<Out<'userContextResponse'>>().toEqualTypeOf<UserContextResponse>()
  expectTypeOf<Out<'progressAccepted'>>().toEqualTypeOf<ProgressAccepted>()
  expectTypeOf<Out<'batchStatus'>>().toEqualTypeOf<BatchStatus>()
  expectTypeOf<Out<'healthReport'>>().toEqualTypeOf<HealthReport>()
  expectTypeOf<Out<'publicHealth'>>().toEqualTypeOf<PublicHealth>()
  expectTypeOf<Out<'problem'>>().toExtend<ProblemBody>()
})
