// The contract check: every response a scenario test receives is checked against the OpenAPI
// document the app serves (generated from the operations by src/openapi/generate.ts) — status, Content-Type, required headers
// and, for JSON, the body against its schema with @cfworker/json-schema (draft 2020-12, no
// eval: it runs in workerd and in the edge VM alike). test/support/scenario.ts calls it from
// `fetch`, so no scenario can receive an undocumented answer without failing.
import {
  type Schema as CfSchema,
  dereference,
  type OutputUnit,
  validate,
} from '@cfworker/json-schema'
import {
  type Header,
  METHODS,
  type Method,
  type OpenApiDocument,
  type OperationObject as Operation,
  openApiDocument,
  type PathItem,
  type Reference,
  type ResponseObject,
  type Schema,
} from '../../src/openapi/generate.ts'
import { OPERATIONS } from '../../src/routes/index.ts'

/** The base URI the document's `#/components/…` references resolve against. */
const BASE = 'https://agent-api.test/openapi.json'

interface Route {
  template: string
  segments: string[]
  params: number
  item: PathItem
}

interface Loaded {
  doc: OpenApiDocument
  lookup: Record<string, CfSchema | boolean>
  routes: Route[]
}

let loaded: Loaded | undefined

function load(): Loaded {
  if (loaded) return loaded
  // A copy: dereferencing annotates the schema objects it indexes.
  const doc = JSON.parse(
    JSON.stringify(openApiDocument(OPERATIONS, 'contract-check')),
  ) as OpenApiDocument
  const lookup = dereference({ ...doc, $id: BASE } as CfSchema)
  const routes = Object.entries(doc.paths)
    .map(([template, item]) => {
      const segments = template.split('/')
      return { template, item, segments, params: segments.filter(isParam).length }
    })
    // A literal segment beats a template, as in the router.
    .sort((a, b) => a.params - b.params)
  loaded = { doc, lookup, routes }
  return loaded
}

const isParam = (segment: string) => /^\{[^}]+\}$/.test(segment)

function match(routes: Route[], pathname: string): Route | undefined {
  const parts = pathname.split('/')
  return routes.find(
    (r) =>
      r.segments.length === parts.length &&
      r.segments.every((s, i) => (isParam(s) ? parts[i] !== '' : s === parts[i])),
  )
}

function resolve<T extends object>(doc: OpenApiDocument, value: T | Reference): T {
  if (!('$ref' in value)) return value
  const path = value.$ref.replace(/^#\//, '').split('/')
  let node: unknown = doc
  for (const key of path) {
    node = (node as Record<string, unknown>)[key.replaceAll('~1', '/').replaceAll('~0', '~')]
  }
  if (node === undefined) throw new Error(`contract: unresolved reference ${value.$ref}`)
  return node as T
}

function schemaErrors(lookup: Loaded['lookup'], value: unknown, schema: Schema): string[] {
  const result = validate(value, schema as CfSchema, '2020-12', lookup, false)
  return result.valid ? [] : result.errors.map(describe)
}

function describe(e: OutputUnit): string {
  return `${e.instanceLocation} (${e.keywordLocation}): ${e.error}`
}

/** A header's value as its schema describes it (integer headers are decimal text). */
function headerValue(text: string, header: Header): unknown {
  return header.schema.type === 'integer' && /^-?[0-9]+$/.test(text) ? Number(text) : text
}

const JSON_MEDIA = /^application\/([\w.-]+\+)?json$/

/**
 * Checks one response against the document; throws an Error naming the route, the status and
 * every mismatch, with the start of the body. Give it a clone: it reads the body.
 */
export async function checkResponse(method: string, url: string, response: Response) {
  const { doc, lookup, routes } = load()
  const { pathname } = new URL(url)
  const verb = method.toLowerCase() === 'head' ? 'get' : method.toLowerCase()
  const route = match(routes, pathname)
  const operation: Operation | undefined =
    route && METHODS.includes(verb as Method) ? route.item[verb as Method] : undefined
  const status = String(response.status)
  const text = await response.text()
  const where = operation
    ? `${method} ${route!.template} (${operation.operationId}) → ${status}`
    : `${method} ${pathname} (no operation) → ${status}`
  const fail = (errors: string[]) => {
    const snippet = text.length > 400 ? `${text.slice(0, 400)}…` : text
    throw new Error(
      `Contract: ${where} disagrees with the OpenAPI document:\n  - ${errors.join('\n  - ')}\n  body: ${snippet}`,
    )
  }

  let documented: ResponseObject | Reference | undefined
  if (operation) {
    documented =
      operation.responses[status] ??
      operation.responses[`${status[0]}XX`] ??
      operation.responses.default
    if (!documented) {
      fail([`status ${status} is not documented (documented: ${Object.keys(operation.responses)})`])
    }
  } else if (route) {
    // The path exists, not with this method: 405 with Allow (OPTIONS: 204 with Allow), unless
    // the global body limit already refused the request (413).
    if (method.toUpperCase() === 'OPTIONS' && status === '204') {
      const allow = response.headers.get('allow') ?? ''
      if (!/^[A-Z]+(, [A-Z]+)*$/.test(allow))
        fail([`OPTIONS 204 needs an Allow header, got ${allow}`])
      if (text !== '') fail(['OPTIONS 204 must have no body'])
      return
    }
    const fallback = { '405': 'MethodNotAllowed', '413': 'BodyTooLarge' }[status]
    if (!fallback) fail(['a method the path does not take must get 405 (or 413)'])
    documented = doc.components.responses[fallback!]
  } else {
    // No operation matches: the app's notFound handler answers (404), unless the global body
    // limit already refused the request (413). Both are documented components.
    const fallback = { '404': 'NotFound', '413': 'BodyTooLarge' }[status]
    if (!fallback) fail(['a request no operation matches must get 404 (or 413)'])
    documented = doc.components.responses[fallback!]
  }
  const spec = resolve(doc, documented!)
  const errors: string[] = []

  for (const [name, header] of Object.entries(spec.headers ?? {})) {
    const value = response.headers.get(name)
    if (value === null) {
      if (header.required) errors.push(`header ${name} is required but missing`)
      continue
    }
    for (const e of schemaErrors(lookup, headerValue(value, header), header.schema)) {
      errors.push(`header ${name}: ${JSON.stringify(value)}: ${e}`)
    }
  }

  const contentType = response.headers.get('content-type')
  if (!spec.content) {
    if (text !== '') errors.push('documented without a body, but has one')
  } else {
    const media = (contentType ?? '').split(';')[0]!.trim().toLowerCase()
    const entry = spec.content[media]
    if (!entry) {
      errors.push(`Content-Type ${contentType} is not one of ${Object.keys(spec.content)}`)
    } else if (method.toUpperCase() !== 'HEAD' && JSON_MEDIA.test(media)) {
      let body: unknown
      try {
        body = JSON.parse(text)
      } catch {
        errors.push('the body is not JSON')
      }
      if (body !== undefined) {
        errors.push(...schemaErrors(lookup, body, entry.schema).map((e) => `body ${e}`))
        if (media === 'application/problem+json') {
          const id = (body as { request_id?: unknown }).request_id
          if (id !== response.headers.get('x-request-id')) {
            errors.push(`problem request_id ${id} differs from the X-Request-Id header`)
          }
        }
      }
    }
  }
  if (errors.length) fail(errors)
}
