// The OpenAPI 3.1 document, generated from the operations (src/routes/*.ts define each beside
// its handler, src/http/operation.ts says how) and what ./document.ts adds around them. Schemas
// are the zod schemas the validators use, converted by zod's own `toJSONSchema`; those
// registered with an id in zod's globalRegistry become `#/components/schemas/<id>`.
//
// Hand-written, small, on purpose: hono-openapi's `generateSpecs` builds the same document (a
// unit test proves it, test/support/openapi-reference.ts), but its schema converter loads all
// of zod's core, locales included, and a dynamic import does not keep that out of a Workers
// upload: measured with `npm run bench`, +76 KiB gzipped and +28 ms of module start-up.
//
// A pure function of the operations and the version, so it can run at build time as well.
// Only GET /openapi.json (and the tests) load this module, through a dynamic import.
import * as z from 'zod/mini'
import { problem } from '../contract/problem-schema.ts'
import { PROBLEM_TYPES, type ProblemCode } from '../contract/problems.ts'
import {
  type Described,
  type HeaderName,
  type JsonSchema,
  type MediaDoc,
  type Operation,
  RATE_LIMIT,
  type ResponseDoc,
  type SharedResponse,
} from '../http/operation.ts'
import { documentFrame, HEADERS, SHARED_RESPONSES } from './document.ts'

// --- the document's shape (what the contract check and the tests read) ----------------------

export type Schema = JsonSchema

export interface Reference {
  $ref: string
}

export interface Header {
  description: string
  required?: boolean
  schema: Schema
}

export interface MediaType {
  schema: Schema
  example?: unknown
  examples?: Record<string, { summary: string; value: unknown }>
}

export interface ResponseObject {
  description: string
  headers?: Record<string, Header>
  content?: Record<string, MediaType>
  /** The problem codes (`/problems/<code>`) this response can carry. */
  'x-problem-codes'?: string[]
}

export interface Parameter {
  name: string
  in: 'path' | 'query' | 'header'
  description?: string
  required?: boolean
  schema: Schema
}

export interface OperationObject {
  operationId: string
  summary: string
  description: string
  tags: string[]
  security?: Record<string, string[]>[]
  parameters?: (Parameter | Reference)[]
  requestBody?: { description?: string; required: boolean; content: Record<string, MediaType> }
  responses: Record<string, ResponseObject | Reference>
}

export const METHODS = ['get', 'post'] as const
export type Method = (typeof METHODS)[number]
export type PathItem = { parameters?: (Parameter | Reference)[] } & Partial<
  Record<Method, OperationObject>
>

export type OpenApiDocument = Omit<
  ReturnType<typeof documentFrame>,
  'parameters' | 'securitySchemes'
> & {
  paths: Record<string, PathItem>
  components: {
    schemas: Record<string, Schema>
    responses: Record<string, ResponseObject>
    parameters: Record<string, Parameter>
    securitySchemes: Record<string, Record<string, unknown>>
  }
}

// --- the parts every generator shares -------------------------------------------------------

/** How a zod schema becomes the document's: request bodies as input, answers as output. */
export type Convert = (schema: z.ZodMiniType, io: 'input' | 'output') => unknown

const ref = (kind: 'schemas' | 'responses' | 'parameters', name: string): Reference => ({
  $ref: `#/components/${kind}/${name}`,
})

/** Hono's `/users/:userId` as OpenAPI's `/users/{userId}`. */
export const openApiPath = (path: string) => path.replace(/:(\w+)/g, '{$1}')

/** Every answer has these three; the rest are the response's own (`required` first). */
function headers(response: ResponseDoc): Record<string, Header> {
  const out: Record<string, Header> = {}
  const always: HeaderName[] = ['X-Request-Id', 'Server-Timing', 'Cache-Control']
  for (const [names, required] of [
    [[...always, ...(response.headers ?? [])], true],
    [response.optionalHeaders ?? [], false],
  ] as const) {
    for (const name of names)
      out[name] = { ...HEADERS[name], required, ...response.headerDocs?.[name] }
  }
  return out
}

/**
 * The Problem schema narrowed to this status and these codes; OAuth's codes also carry
 * `error` and `error_description` (if code ∈ oauth then required).
 */
function problemSchema(status: number, codes: readonly ProblemCode[]): Schema {
  const oauth = PROBLEM_TYPES.filter((p) => 'oauth' in p && codes.includes(p.code)).map(
    (p) => p.code,
  )
  return {
    allOf: [ref('schemas', 'Problem')],
    properties: { status: { const: status }, code: { enum: codes } },
    ...(oauth.length
      ? {
          anyOf: [
            { properties: { code: { not: { enum: oauth } } } },
            { required: ['error', 'error_description'] },
          ],
        }
      : {}),
  }
}

/** The zod schema `described` names (built now if it is built on first use). */
export const zodSchema = (described: Described): z.ZodMiniType =>
  typeof described === 'function' ? described() : described

function media(doc: MediaDoc, io: 'input' | 'output', convert: Convert) {
  const { schema, ...rest } = doc
  const zod = typeof schema === 'function' || '_zod' in schema
  return { ...rest, schema: zod ? convert(zodSchema(schema as Described), io) : schema }
}

/** A response object: a problem answer, a body, or neither. */
export function responseObject(status: number, doc: ResponseDoc, convert: Convert) {
  const codes = doc.problems
  const list = codes
    ?.map((code) => PROBLEM_TYPES.find((p) => p.code === code)!)
    .map((p) => `- \`${p.code}\`: ${p.description}`)
    .join('\n')
  return {
    description: list ? `${doc.description}\n\n${list}` : doc.description,
    headers: headers(doc),
    ...(codes
      ? {
          content: {
            [doc.problemMediaType ?? 'application/problem+json']: {
              schema: problemSchema(status, codes),
            },
          },
          'x-problem-codes': [...codes],
        }
      : doc.content
        ? {
            content: Object.fromEntries(
              Object.entries(doc.content).map(([type, m]) => [type, media(m, 'output', convert)]),
            ),
          }
        : {}),
  }
}

/** A shared problem answer's status: its code's, from the catalogue. */
function statusOf(doc: ResponseDoc): number {
  const type = PROBLEM_TYPES.find((p) => p.code === doc.problems?.[0])
  if (!type) throw new Error('openapi: a shared response without a catalogued problem code')
  return type.status
}

/** `#/components/responses`: the answers of any operation. */
export function sharedResponses(convert: Convert) {
  return Object.fromEntries(
    Object.entries(SHARED_RESPONSES).map(([name, doc]) => [
      name,
      responseObject(statusOf(doc), doc, convert),
    ]),
  ) as Record<string, ResponseObject>
}

/** What middleware answers on the operation, besides what it declares itself. */
function implicitResponses(op: Operation): Record<string, ResponseDoc | SharedResponse> {
  const out: Record<string, ResponseDoc | SharedResponse> = {}
  if (op.scope) {
    // requireAuth: no or a bad token, a token without the scope, the agent's request limit.
    out['401'] = {
      description: 'Not authenticated',
      problems: ['invalid_token'],
      headers: ['WWW-Authenticate'],
      optionalHeaders: RATE_LIMIT,
    }
    if (op.scope !== 'any') {
      out['403'] = {
        description: 'The token lacks the scope',
        problems: ['insufficient_scope'],
        headers: ['WWW-Authenticate'],
        optionalHeaders: RATE_LIMIT,
      }
    }
    out['429'] = 'RateLimited'
  }
  if (op.method === 'post') out['413'] = 'BodyTooLarge'
  if (op.request?.json || op.request?.body) out['415'] = 'UnsupportedMediaType'
  return out
}

/**
 * The operation object, but for the parameters its path and header schemas make (each
 * generator derives those its own way) and the request id every operation takes.
 */
export function operationObject(op: Operation, convert: Convert) {
  const responses: Record<string, unknown> = {}
  const all = { ...implicitResponses(op), ...op.responses }
  for (const status of Object.keys(all).sort()) {
    const doc = all[status]!
    responses[status] =
      typeof doc === 'string' ? ref('responses', doc) : responseObject(Number(status), doc, convert)
  }
  responses['500'] ??= ref('responses', 'InternalError')
  const scopes = op.scope === 'any' || !op.scope ? [] : [op.scope]
  const security = op.scope ? [{ bearerAuth: scopes }, { agentOAuth: scopes }] : op.security
  const body = op.request?.body
  const json = op.request?.json
  const content = body
    ? Object.fromEntries(
        Object.entries(body.content).map(([type, m]) => [type, media(m, 'input', convert)]),
      )
    : json && { 'application/json': media({ schema: json }, 'input', convert) }
  return {
    operationId: op.operationId,
    summary: op.summary,
    description: op.description,
    tags: [op.tag],
    ...(security ? { security: security.map((r) => ({ ...r })) } : {}),
    parameters: [ref('parameters', 'XRequestId')] as (Parameter | Reference)[],
    ...(content
      ? {
          requestBody: {
            ...(body ? { description: body.description } : {}),
            required: !op.request?.optional,
            content,
          },
        }
      : {}),
    responses,
  }
}

// --- this generator ---------------------------------------------------------------------------

/** Converts zod schemas, keeping every registered one (and those it references) as a component. */
class Components {
  readonly schemas: Record<string, Schema> = {}

  readonly convert: Convert = (schema, io) => {
    const {
      $schema: _,
      $defs,
      ...root
    } = z.toJSONSchema(schema, {
      target: 'draft-2020-12',
      io,
      unrepresentable: 'throw',
    }) as Schema & { $defs?: Record<string, Schema> }
    for (const [id, definition] of Object.entries($defs ?? {})) {
      const component = relink(definition) as Schema
      const known = this.schemas[id]
      if (known && JSON.stringify(known) !== JSON.stringify(component)) {
        throw new Error(`openapi: two different schemas are registered as ${id}`)
      }
      this.schemas[id] = component
    }
    return relink(root)
  }

  /** The parameters an object schema makes (a registered one with one member: a component). */
  parameters(
    schema: z.ZodMiniType,
    place: 'path' | 'query' | 'header',
    components: Record<string, Parameter>,
  ): (Parameter | Reference)[] {
    const converted = this.convert(schema, 'input') as Schema
    const id = typeof converted.$ref === 'string' ? converted.$ref.split('/').pop()! : undefined
    const object = (id ? this.schemas[id] : converted) as {
      properties?: Record<string, Schema>
      required?: string[]
    }
    const list = Object.entries(object.properties ?? {}).map(([name, property]) => {
      const { description, ...rest } = property
      return {
        in: place,
        name,
        schema: rest,
        ...(object.required?.includes(name) ? { required: true } : {}),
        ...(typeof description === 'string' ? { description } : {}),
      } as Parameter
    })
    if (id && list.length === 1) {
      delete this.schemas[id]
      components[id] = list[0]!
      return [ref('parameters', id)]
    }
    return list
  }
}

/** `#/$defs/<id>` (zod's) as `#/components/schemas/<id>`, at any depth. */
function relink(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(relink)
  if (!node || typeof node !== 'object') return node
  return Object.fromEntries(
    Object.entries(node).map(([key, value]) => [
      key,
      key === '$ref' && typeof value === 'string'
        ? value.replace(/^#\/\$defs\//, '#/components/schemas/')
        : relink(value),
    ]),
  )
}

/**
 * The document for `operations` (every operation the app serves) at `version`.
 * Throws when two operations share a method and path.
 */
export function buildDocument(operations: readonly Operation[], version: string): OpenApiDocument {
  const components = new Components()
  const { parameters: frameParameters, securitySchemes, ...frame } = documentFrame(version)
  const parameters: Record<string, Parameter> = { ...frameParameters }
  const paths: Record<string, PathItem> = {}
  for (const op of operations) {
    const path = openApiPath(op.path)
    paths[path] ??= {}
    const item = paths[path]
    if (item[op.method]) throw new Error(`openapi: ${op.method} ${op.path} is defined twice`)
    const operation = operationObject(op, components.convert)
    if (op.request?.params) {
      operation.parameters.push(...components.parameters(op.request.params, 'path', parameters))
    }
    if (op.request?.query) {
      operation.parameters.push(...components.parameters(op.request.query, 'query', parameters))
    }
    if (op.request?.headers) {
      operation.parameters.push(
        ...components.parameters(zodSchema(op.request.headers), 'header', parameters),
      )
    }
    item[op.method] = operation as OperationObject
  }
  // The Problem schema is referenced only from the problem answers' own schemas.
  components.convert(problem(), 'output')
  return {
    ...frame,
    paths,
    components: {
      schemas: components.schemas,
      responses: sharedResponses(components.convert),
      parameters,
      securitySchemes,
    },
  }
}

const built = new Map<string, OpenApiDocument>()

/** The document, built once per isolate and version. */
export function openApiDocument(
  operations: readonly Operation[],
  version: string,
): OpenApiDocument {
  let doc = built.get(version)
  if (!doc) {
    doc = buildDocument(operations, version)
    built.set(version, doc)
  }
  return doc
}
