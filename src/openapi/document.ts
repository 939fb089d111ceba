// The OpenAPI 3.1 document, generated from the zod schemas that validate requests (src/contract,
// converted with zod's own JSON Schema conversion: there is no second copy of any request
// schema) and from the response schemas in ./responses.ts.
//
// Built once per isolate, on the first GET /openapi.json, and memoised: generation costs a few
// milliseconds of CPU. Only src/routes/docs.ts loads this module, through a dynamic import, so
// nothing here runs (or is even evaluated) on any other route.
import * as z from 'zod/mini'
import { userIdParam } from '../contract/context.ts'
import { heartbeat } from '../contract/health.ts'
import { PROBLEM_TYPES, type ProblemCode, problemType } from '../contract/problems.ts'
import { MAX_DATA_BYTES, MAX_UPDATES, progressBatch, progressUpdate } from '../contract/progress.ts'
import { MAX_JSON_DEPTH } from '../contract/storable.ts'
import {
  jsonClientCredentials,
  jsonRefresh,
  jsonRevoke,
  revokeForm,
  SCOPES,
  tokenForm,
} from '../contract/token.ts'
import {
  batchStatus,
  CACHE_STATUSES,
  fieldError,
  flushReport,
  healthReport,
  problem,
  progressAccepted,
  publicHealth,
  revokeResponse,
  storedHeartbeat,
  taskProgress,
  tokenResponse,
  userContextResponse,
} from './responses.ts'

// --- the document's shape (what the contract check and the tests read) --------------------

/** A JSON Schema (draft 2020-12). */
export type Schema = { [keyword: string]: unknown }

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
  description: string
  required: boolean
  schema: Schema
}

export interface Operation {
  operationId: string
  summary: string
  description: string
  tags: string[]
  security?: Record<string, string[]>[]
  parameters?: (Parameter | Reference)[]
  requestBody?: { description: string; required: boolean; content: Record<string, MediaType> }
  responses: Record<string, ResponseObject | Reference>
}

export const METHODS = ['get', 'post'] as const
export type Method = (typeof METHODS)[number]
export type PathItem = { parameters?: (Parameter | Reference)[] } & Partial<
  Record<Method, Operation>
>

export interface OpenApiDocument {
  openapi: '3.1.0'
  jsonSchemaDialect: string
  info: { title: string; version: string; description: string; license: { name: string } }
  servers: { url: string; description: string }[]
  tags: { name: string; description: string }[]
  paths: Record<string, PathItem>
  components: {
    schemas: Record<string, Schema>
    responses: Record<string, ResponseObject>
    parameters: Record<string, Parameter>
    securitySchemes: Record<string, Record<string, unknown>>
  }
  'x-problem-types': { code: string; status: number; type: string; description: string }[]
}

// src/app.ts's MAX_BODY_BYTES, which the unit test holds this equal to: importing app.ts here
// would pull the whole app into this lazily loaded module's graph (and esbuild's lazy wrappers).
export const MAX_BODY_BYTES = 64 * 1024

export const DIALECT = 'https://json-schema.org/draft/2020-12/schema'
const ref = (kind: 'schemas' | 'responses' | 'parameters', name: string) => ({
  $ref: `#/components/${kind}/${name}`,
})

// --- schemas -------------------------------------------------------------------------------

/** Components from zod schemas; references between them become `#/components/schemas/…`. */
function components(entries: Record<string, z.ZodMiniType>, io: 'input' | 'output') {
  const registry = z.registry<{ id?: string }>()
  for (const [id, schema] of Object.entries(entries)) registry.add(schema, { id })
  const { schemas } = z.toJSONSchema(registry, {
    target: 'draft-2020-12',
    io,
    unrepresentable: 'throw',
    uri: (id) => `#/components/schemas/${id}`,
  })
  const out: Record<string, Schema> = {}
  for (const [id, schema] of Object.entries(schemas)) out[id] = bare(schema)
  return out
}

/** One schema, inlined (for parameters). */
function inline(schema: z.ZodMiniType): Schema {
  return bare(z.toJSONSchema(schema, { target: 'draft-2020-12', unrepresentable: 'throw' }))
}

/** Without `$schema` (the document's dialect says it) and `$id` (components are addressed by path). */
function bare(schema: object): Schema {
  const { $schema: _dialect, $id: _id, ...rest } = JSON.parse(JSON.stringify(schema)) as Schema
  return rest
}

/** Adds descriptions to an object schema's properties (zod keeps none for shared leaves). */
function described(schema: Schema, description: string, properties: Record<string, string> = {}) {
  const props = (schema.properties ?? {}) as Record<string, Schema>
  for (const [name, text] of Object.entries(properties)) {
    const prop = props[name]
    if (!prop) throw new Error(`openapi: no property ${name} to describe`)
    prop.description = text
  }
  schema.description = description
  return schema
}

function schemas(): Record<string, Schema> {
  const requests = components(
    {
      TokenRequestClientCredentials: jsonClientCredentials,
      TokenRequestRefresh: jsonRefresh,
      TokenRequestForm: tokenForm,
      RevokeRequest: jsonRevoke,
      RevokeRequestForm: revokeForm,
      ProgressUpdate: progressUpdate,
      ProgressBatch: progressBatch,
      Heartbeat: heartbeat,
    },
    'input',
  )
  const responses = components(
    {
      TokenResponse: tokenResponse,
      RevokeResponse: revokeResponse,
      TaskProgress: taskProgress,
      UserContextResponse: userContextResponse,
      ProgressAccepted: progressAccepted,
      BatchStatus: batchStatus,
      FlushReport: flushReport,
      PublicHealth: publicHealth,
      StoredHeartbeat: storedHeartbeat,
      HealthReport: healthReport,
      FieldError: fieldError,
      Problem: problem,
    },
    'output',
  )
  const scopes = `Space-separated scopes (${SCOPES.join(', ')}); default: all the agent may hold.`
  const s = { ...requests, ...responses }
  described(s.TokenRequestClientCredentials!, 'JSON client credentials (the contract’s form 1).', {
    grant_type: 'Optional; when present, `client_credentials`.',
    agent_id: 'The agent’s id.',
    agent_secret: 'The agent’s own secret, or the environment’s shared agent secret.',
    scope: scopes,
  })
  described(
    s.TokenRequestRefresh!,
    'JSON refresh: exchanges a refresh token (which rotates). The client authenticates (RFC 6749 §6): with `agent_id`/`agent_secret` here, or by HTTP Basic (not both).',
    {
      refresh_token:
        'A refresh token of this environment; each use returns a new one, re-use revokes its family and the access tokens it issued.',
      scope: 'At most the original grant’s scopes.',
      agent_id: 'The agent’s id (or send the credentials by HTTP Basic).',
      agent_secret: 'The agent’s secret (or send the credentials by HTTP Basic).',
    },
  )
  described(
    s.TokenRequestForm!,
    'RFC 6749 §4.4 and §6. Client credentials in the body (`client_id`, `client_secret`) or by HTTP Basic, never both. Parameters may not repeat; each value is at most 8192 characters; unknown parameters are ignored.',
    {
      grant_type: '`client_credentials` or `refresh_token`.',
      client_id: 'The agent’s id (or send it by HTTP Basic).',
      client_secret: 'The agent’s secret (or send it by HTTP Basic).',
      refresh_token:
        'Required with `grant_type=refresh_token`, together with client authentication (Basic or `client_id`/`client_secret`).',
      scope: scopes,
    },
  )
  described(
    s.RevokeRequest!,
    'RFC 7009: authenticate with `agent_id`/`agent_secret`, HTTP Basic or a bearer access token of the same agent.',
    {
      token: 'A refresh token, an access token, or an access token’s `jti`.',
      token_type_hint: 'Where to look first.',
    },
  )
  described(
    s.RevokeRequestForm!,
    'RFC 7009 §2.1, form-encoded. A `token_type_hint` other than `access_token`/`refresh_token` is ignored.',
  )
  described(s.ProgressUpdate!, 'One progress report on one task of one user.', {
    user_id: 'A user the agent holds a grant for.',
    task_id: 'The task, 1–128 characters.',
    progress: 'Percent complete.',
    occurred_at:
      'RFC 3339 with an offset; at most 5 minutes in the future. The latest `occurred_at` wins the stored state.',
    idempotency_key:
      'Deduplicates retries; derived from the update’s content when absent. With a single-update body, the `Idempotency-Key` header may carry it (they must agree).',
    data: `Free-form JSON object, at most ${MAX_DATA_BYTES} bytes as JSON and nested at most ${MAX_JSON_DEPTH} levels, stored exactly as sent; no string in it (key or value) may contain U+0000 or an unpaired surrogate.`,
  })
  described(
    s.ProgressBatch!,
    `1 to ${MAX_UPDATES} updates, validated and grant-checked together: all or nothing.`,
  )
  described(s.Heartbeat!, 'The agent’s own health, stored as its heartbeat.')
  described(s.TokenResponse!, 'Tokens (`Cache-Control: no-store`).', {
    access_token: 'JWT (HS256, `typ: at+jwt`).',
    expires_in: 'Access token lifetime in seconds.',
    expires_at: 'When the access token expires (RFC 3339).',
    refresh_expires_in: 'Refresh token lifetime in seconds.',
    scope: 'The granted scopes.',
  })
  described(s.RevokeResponse!, 'Empty: a well-formed revocation always succeeds (RFC 7009).')
  described(s.UserContextResponse!, 'A user’s profile, free-form context and task progress.', {
    context: 'Free-form JSON: goals, preferences, notes.',
    source:
      '`database`, `cache`, `stale-cache`, `basic` (degraded: `user.id` only, empty `context` and `progress`) or `mock` (development only).',
    cached_at: 'When the answer was cached, or null when it came from the database.',
    degraded: 'True when the database could not answer (see `X-Degraded`).',
  })
  described(s.ProgressAccepted!, 'The updates are durable.', {
    accepted: 'Updates newly accepted.',
    duplicates: 'Updates whose idempotency key was already seen.',
    status:
      '`queued`: durably buffered (Redis), flushed to Postgres later; `committed`: already in Postgres.',
  })
  described(
    s.BatchStatus!,
    'Where a batch of accepted updates is. Monotonic: once `committed`, always `committed` with the same `committed_at`. A batch stays `queued` while one of its updates is a dead letter; when an operator discards that one, the batch is `committed` with `discarded` counting what was dropped.',
    {
      dead_letters: 'Updates of the batch a store refused at flush time, held as dead letters.',
      discarded: 'Updates of the batch an operator discarded from the dead letters.',
    },
  )
  described(s.FlushReport!, 'What one drain of the progress buffer did.', {
    remaining: 'Updates still buffered after the drain (null when they could not be counted).',
    dead_letters:
      'Updates held as dead letters (a store refused them; see the health report), null when they could not be counted.',
    skipped: 'Why nothing was flushed, when nothing was.',
  })
  described(
    s.PublicHealth!,
    'draft-inadarei-api-health-check: pass/warn/fail per dependency, nothing more.',
  )
  described(s.HealthReport!, 'The authenticated health report. No secret, URL or token.', {
    last_seen: 'When this agent last sent a heartbeat (within 15 minutes), else null.',
    heartbeat: 'That heartbeat, else null.',
  })
  described(
    s.Problem!,
    'RFC 9457 problem details. `type` is `/problems/<code>`; `code` is stable and machine-readable (see `x-problem-types`). Never a stack trace, secret, SQL text or upstream error.',
    {
      type: 'A relative reference: `/problems/<code>`.',
      code: 'Stable machine-readable code.',
      request_id: 'Equals the `X-Request-Id` response header.',
      errors:
        'Validation failures: one entry per field (`path` is dotted, e.g. `updates.3.progress`).',
      error: 'Token endpoints only: the OAuth error code (RFC 6749 §5.2).',
      error_description: 'Token endpoints only: the OAuth error description.',
    },
  )
  return s
}

// --- headers and responses -------------------------------------------------------------------

/** A header whose value is a decimal integer (OpenAPI describes the value, not its text). */
const integer = (minimum: number): Schema => ({ type: 'integer', minimum })

const HEADERS = {
  'X-Request-Id': {
    description:
      'The caller’s `X-Request-Id` when it is 1–128 characters of `[A-Za-z0-9_=-]`, else a new id.',
    schema: { type: 'string', pattern: '^[\\w=-]{1,128}$' },
  },
  'Server-Timing': {
    description: '`total`, and `db`, `redis`, `cache` where they were used (W3C Server Timing).',
    schema: { type: 'string', pattern: '^total;dur=[0-9.]+' },
  },
  'Cache-Control': {
    description: '`no-store` unless the route says otherwise.',
    schema: { type: 'string', const: 'no-store' },
  },
  'RateLimit-Limit': {
    description: 'Requests allowed in the current window (draft-ietf-httpapi-ratelimit-headers).',
    schema: integer(1),
  },
  'RateLimit-Remaining': { description: 'Requests left in the window.', schema: integer(0) },
  'RateLimit-Reset': { description: 'Seconds until the window resets.', schema: integer(0) },
  'Retry-After': { description: 'Seconds to wait before retrying.', schema: integer(1) },
  'WWW-Authenticate': {
    description: 'The challenge (RFC 6750 for bearer tokens, RFC 6749 §5.2 for clients).',
    schema: { type: 'string' },
  },
  'Accept-Post': { description: 'The media types the route accepts.', schema: { type: 'string' } },
  Location: {
    description: 'The batch: `/api/v1/agent/progress/batches/{batch_id}`.',
    schema: { type: 'string', pattern: '^/api/v1/agent/progress/batches/[0-9a-f-]{36}$' },
  },
  ETag: {
    description: 'Weak validator of the user’s profile, context and progress.',
    schema: { type: 'string', pattern: '^W/"[0-9a-f]+"$' },
  },
  'X-Cache': {
    description: '`BYPASS` when the request had `Cache-Control: no-cache`.',
    schema: { type: 'string', enum: [...CACHE_STATUSES] },
  },
  'X-Degraded': {
    description: 'Why the answer is degraded (e.g. `circuit_open`, `database_unavailable`).',
    schema: { type: 'string' },
  },
  Pragma: { description: '`no-cache` (RFC 6749 §5.1).', schema: { type: 'string' } },
  Allow: {
    description: 'The methods the path takes (RFC 9110 §10.2.1).',
    schema: { type: 'string', pattern: '^[A-Z]+(, [A-Z]+)*$' },
  },
} satisfies Record<string, Header>

type HeaderName = keyof typeof HEADERS

/** Headers of a response: every response has X-Request-Id, Server-Timing and Cache-Control. */
function headers(
  required: HeaderName[] = [],
  optional: HeaderName[] = [],
  overrides: Partial<Record<HeaderName, Partial<Header>>> = {},
): Record<string, Header> {
  const out: Record<string, Header> = {}
  const always: HeaderName[] = ['X-Request-Id', 'Server-Timing', 'Cache-Control']
  for (const [names, req] of [
    [[...always, ...required], true],
    [optional, false],
  ] as const) {
    for (const name of names) {
      out[name] = { ...HEADERS[name], required: req, ...overrides[name] }
    }
  }
  return out
}

const RATE_LIMIT: HeaderName[] = ['RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset']

function json(schema: string, example?: unknown): Record<string, MediaType> {
  return {
    'application/json': { schema: ref('schemas', schema), ...(example ? { example } : {}) },
  }
}

/**
 * A problem response: the Problem schema narrowed to this status and these codes; on the token
 * endpoints, OAuth's codes also carry `error` and `error_description`.
 */
function problems(
  status: number,
  codes: ProblemCode[],
  options: { headers?: Record<string, Header>; description?: string } = {},
): ResponseObject {
  const types = codes.map(problemType)
  const oauth = types.filter((t) => t.oauth).map((t) => t.code)
  const schema: Schema = {
    allOf: [ref('schemas', 'Problem')],
    properties: { status: { const: status }, code: { enum: codes } },
    // OAuth's codes carry `error` and `error_description` (if code ∈ oauth then required).
    ...(oauth.length
      ? {
          anyOf: [
            { properties: { code: { not: { enum: oauth } } } },
            { required: ['error', 'error_description'] },
          ],
        }
      : {}),
  }
  const list = types.map((t) => `- \`${t.code}\`: ${t.description}`).join('\n')
  return {
    description: `${options.description ?? 'Problem'}\n\n${list}`,
    headers: options.headers ?? headers(),
    content: { 'application/problem+json': { schema } },
    'x-problem-codes': codes,
  }
}

const unauthorized = (codes: ProblemCode[] = ['invalid_token']) =>
  problems(401, codes, {
    description: 'Not authenticated',
    headers: headers(['WWW-Authenticate'], RATE_LIMIT),
  })

const unavailable = (
  codes: ProblemCode[],
  extra: HeaderName[] = [],
  description = 'Unavailable: nothing was done; retry after `Retry-After` seconds',
) =>
  problems(503, codes, {
    description,
    headers: headers(['Retry-After'], [...RATE_LIMIT, ...extra]),
  })

/** What requireAuth answers on a protected route: 401, 403 (with a scope) and 429. */
function protectedResponses(scoped: boolean): Record<string, ResponseObject | Reference> {
  return {
    '401': unauthorized(),
    ...(scoped
      ? {
          '403': problems(403, ['insufficient_scope'], {
            description: 'The token lacks the scope',
            headers: headers(['WWW-Authenticate'], RATE_LIMIT),
          }),
        }
      : {}),
    '429': ref('responses', 'RateLimited'),
  }
}

function sharedResponses(): Record<string, ResponseObject> {
  return {
    RateLimited: problems(429, ['rate_limited'], {
      description: 'Rate limited',
      headers: headers(['Retry-After', ...RATE_LIMIT]),
    }),
    BodyTooLarge: problems(413, ['body_too_large'], {
      description: `The body exceeds ${MAX_BODY_BYTES} bytes (checked before routing)`,
    }),
    UnsupportedMediaType: problems(415, ['unsupported_media_type'], {
      description: 'Wrong `Content-Type`',
      headers: headers(['Accept-Post'], RATE_LIMIT),
    }),
    InternalError: problems(500, ['internal_error'], {
      description: 'A bug (never bad input): the answer has no internals',
      headers: headers([], RATE_LIMIT),
    }),
    MethodNotAllowed: problems(405, ['method_not_allowed'], {
      description:
        'The path exists, but not with this method (the answer to any such request). `OPTIONS` on an existing path answers `204` with `Allow`.',
      headers: headers(['Allow']),
    }),
    NotFound: problems(404, ['not_found'], {
      description:
        'No route for this method and path (the answer to any request no operation matches)',
    }),
  }
}

// --- parameters ----------------------------------------------------------------------------

function parameters(): Record<string, Parameter> {
  return {
    XRequestId: {
      name: 'X-Request-Id',
      in: 'header',
      required: false,
      description:
        'Your id for this request (1–128 of `[A-Za-z0-9_=-]`): echoed in `X-Request-Id`, logs and problem bodies. Otherwise one is made.',
      schema: { type: 'string', minLength: 1, maxLength: 128, pattern: '^[\\w=-]+$' },
    },
    UserId: {
      name: 'userId',
      in: 'path',
      required: true,
      description: 'The user (1–128 characters). Unknown and not granted give the same 404.',
      schema: inline(userIdParam.shape.userId),
    },
    BatchId: {
      name: 'batchId',
      in: 'path',
      required: true,
      description: 'The `batch_id` of a 202. Only the agent that created the batch sees it.',
      schema: { type: 'string', format: 'uuid' },
    },
  }
}

// --- operations ----------------------------------------------------------------------------

const bearer = (scope?: string): Record<string, string[]>[] => [
  { bearerAuth: scope ? [scope] : [] },
  { agentOAuth: scope ? [scope] : [] },
]

const requestId = [ref('parameters', 'XRequestId')]

const TOKEN_EXAMPLE = {
  access_token: 'eyJhbGciOiJIUzI1NiIsInR5cCI6ImF0K2p3dCIsImtpZCI6ImN1cnJlbnQifQ.e30.c2ln',
  token_type: 'Bearer',
  expires_in: 900,
  expires_at: '2026-11-26T10:15:00.000Z',
  refresh_token: 'rt_7b1f0c2e.4ZxQ',
  refresh_expires_in: 86400,
  scope: 'context:read progress:write',
  environment: 'production',
}

function tokenOperations(): Record<string, PathItem> {
  const tokenHeaders = headers([...RATE_LIMIT], [])
  const failure = (status: number, codes: ProblemCode[], description: string) =>
    problems(status, codes, {
      description,
      headers: headers(status === 401 ? ['WWW-Authenticate'] : [], RATE_LIMIT),
    })
  const common = {
    '413': ref('responses', 'BodyTooLarge'),
    '415': ref('responses', 'UnsupportedMediaType'),
    '429': problems(429, ['rate_limited'], {
      description: 'Too many failed token requests for this agent id or client address',
      headers: headers(['Retry-After', ...RATE_LIMIT]),
    }),
    '500': ref('responses', 'InternalError'),
  }
  const limits =
    'Failed requests count against per-(agent id, client address) and per-address limits; `RateLimit-*` headers report the tighter one.'
  return {
    '/api/v1/agent/token': {
      post: {
        operationId: 'issueToken',
        summary: 'Issue tokens (client credentials or refresh)',
        description: `JSON \`{ agent_id, agent_secret, scope? }\`, RFC 6749 client credentials (form; \`client_id\`/\`client_secret\` in the body or HTTP Basic), or a refresh (form or JSON) with client authentication (RFC 6749 §6: Basic, or the body's credentials). Refresh tokens rotate and belong to the environment that issued them; re-using a spent one revokes its whole family and the access tokens it issued. Empty form parameters count as omitted (RFC 6749 §3.2). ${limits}`,
        tags: ['tokens'],
        security: [{}, { clientBasic: [] }],
        parameters: requestId,
        requestBody: {
          description: 'JSON or form-encoded',
          required: true,
          content: {
            'application/json': {
              schema: {
                oneOf: [
                  ref('schemas', 'TokenRequestClientCredentials'),
                  ref('schemas', 'TokenRequestRefresh'),
                ],
              },
              examples: {
                clientCredentials: {
                  summary: 'Client credentials',
                  value: {
                    agent_id: 'demo-agent',
                    agent_secret: 'the-agent-secret',
                    scope: 'context:read progress:write',
                  },
                },
                refresh: {
                  summary: 'Refresh',
                  value: { grant_type: 'refresh_token', refresh_token: 'rt_7b1f0c2e.4ZxQ' },
                },
              },
            },
            'application/x-www-form-urlencoded': {
              schema: ref('schemas', 'TokenRequestForm'),
              example: {
                grant_type: 'client_credentials',
                client_id: 'demo-agent',
                client_secret: 'the-agent-secret',
              },
            },
          },
        },
        responses: {
          '200': {
            description: 'Tokens',
            headers: headers([...RATE_LIMIT, 'Pragma']),
            content: json('TokenResponse', TOKEN_EXAMPLE),
          },
          '400': failure(
            400,
            [
              'invalid_request',
              'unsupported_grant_type',
              'invalid_scope',
              'invalid_grant',
              'invalid_json',
            ],
            'The request is malformed or the grant is not valid',
          ),
          '401': failure(401, ['invalid_client'], 'Client authentication failed'),
          ...common,
          '503': unavailable(['configuration_error', 'database_unavailable']),
        },
      },
    },
    '/api/v1/agent/token/revoke': {
      post: {
        operationId: 'revokeToken',
        summary: 'Revoke a token (RFC 7009)',
        description: `Revokes a refresh token (with its whole family and every access token the family issued), an access token or an access token’s \`jti\`. \`token_type_hint\` is only a hint: every type is searched (RFC 7009 §2.1). Authenticated with the agent’s credentials (body or Basic) or a valid access token of the same agent, and counted against the agent’s request limit. \`200\` for a well-formed request, also for a token that is unknown or another agent’s: it means the token no longer works anywhere. When the shared revocation store fails, \`503 revocation_partial\` says the revocation holds on the answering instance only. ${limits}`,
        tags: ['tokens'],
        security: [{ clientBasic: [] }, { bearerAuth: [] }, {}],
        parameters: requestId,
        requestBody: {
          description: 'JSON or form-encoded',
          required: true,
          content: {
            'application/json': {
              schema: ref('schemas', 'RevokeRequest'),
              example: { token: 'rt_7b1f0c2e.4ZxQ', token_type_hint: 'refresh_token' },
            },
            'application/x-www-form-urlencoded': {
              schema: ref('schemas', 'RevokeRequestForm'),
              example: { token: 'rt_7b1f0c2e.4ZxQ' },
            },
          },
        },
        responses: {
          '200': {
            description: 'Revoked (or nothing to revoke)',
            headers: tokenHeaders,
            content: json('RevokeResponse', {}),
          },
          '400': failure(
            400,
            ['invalid_request', 'invalid_json'],
            'The request is malformed or credentials were sent twice',
          ),
          '401': failure(
            401,
            ['invalid_client', 'invalid_token'],
            'Neither valid client credentials nor a valid access token',
          ),
          ...common,
          '503': problems(
            503,
            [
              'configuration_error',
              'database_unavailable',
              'revocation_unavailable',
              'revocation_partial',
              'outcome_unknown',
            ],
            {
              description:
                'Unavailable; retry after `Retry-After` seconds. `…_unavailable`: nothing was revoked. `revocation_partial`: revoked on the answering instance only (and a refresh token in Postgres). `outcome_unknown`: the token store timed out, the revocation may have landed.',
              headers: headers(['Retry-After'], RATE_LIMIT),
            },
          ),
        },
      },
    },
  }
}

const CONTEXT_EXAMPLE = {
  user: {
    id: 'demo-user-1',
    display_name: 'Ada',
    timezone: 'Europe/Berlin',
    locale: 'de-DE',
  },
  context: { goals: ['Finish the onboarding course'] },
  progress: [
    {
      task_id: 'onboarding',
      status: 'in_progress',
      progress: 40,
      updated_at: '2026-11-26T09:00:00.000Z',
    },
  ],
  source: 'database',
  cached_at: null,
  degraded: false,
}

function contextOperations(): Record<string, PathItem> {
  const contextHeaders = (status: 200 | 304) =>
    headers(
      ['X-Cache', ...RATE_LIMIT, ...(status === 304 ? (['ETag'] as const) : [])],
      status === 200 ? ['ETag', 'X-Degraded'] : [],
      {
        'Cache-Control': {
          description:
            '`private, max-age=<seconds the answer stays fresh>`; `private, no-store` when degraded.',
          schema: { type: 'string', pattern: '^private, (max-age=[0-9]+|no-store)$' },
        },
        'X-Degraded': {
          description:
            'Present when degraded: why (e.g. `circuit_open`, `database_unavailable`). No `ETag` then.',
        },
      },
    )
  return {
    '/api/v1/agent/users/{userId}/context': {
      parameters: [ref('parameters', 'UserId')],
      get: {
        operationId: 'getUserContext',
        summary: 'A user’s context',
        description:
          'Needs scope `context:read` and a grant for the user. Served from the isolate cache while fresh; when the database fails or its circuit is open the answer degrades (stale cache, else a basic answer) with `degraded: true` and `X-Degraded`, never to a 5xx.',
        tags: ['context'],
        security: bearer('context:read'),
        parameters: [
          ...requestId,
          {
            name: 'If-None-Match',
            in: 'header',
            required: false,
            description: 'An `ETag` from an earlier answer: `304` while it still matches.',
            schema: { type: 'string' },
          },
          {
            name: 'Cache-Control',
            in: 'header',
            required: false,
            description: '`no-cache` bypasses the cache (`X-Cache: BYPASS`).',
            schema: { type: 'string', examples: ['no-cache'] },
          },
        ],
        responses: {
          '200': {
            description: 'The context',
            headers: contextHeaders(200),
            content: json('UserContextResponse', CONTEXT_EXAMPLE),
          },
          '304': { description: 'Not modified (`If-None-Match`)', headers: contextHeaders(304) },
          '400': problems(400, ['validation_failed'], {
            description:
              '`userId` is longer than 128 characters, or holds U+0000 or an unpaired surrogate (answered alike whether or not such a user exists)',
            headers: headers([], RATE_LIMIT),
          }),
          ...protectedResponses(true),
          '404': problems(404, ['not_found'], {
            description:
              'No such user, or no grant for it (indistinguishable); also a `userId` no user can have (U+0000, an unpaired surrogate), and a grant that cannot be confirmed while the database is down (never a degraded 200)',
            headers: headers([], RATE_LIMIT),
          }),
          '500': ref('responses', 'InternalError'),
          '503': unavailable(['configuration_error']),
        },
      },
    },
  }
}

function progressOperations(): Record<string, PathItem> {
  return {
    '/api/v1/agent/progress': {
      post: {
        operationId: 'reportProgress',
        summary: 'Report progress (one update or a batch)',
        description:
          'Needs scope `progress:write` and grants for every user. The whole request is validated and grant-checked before anything is accepted (all or nothing). A `202` means durable and storable: buffered in Redis (`queued`) or committed to Postgres (`committed`). `duplicates` counts updates whose idempotency key was already accepted, whichever store took it; a key re-used for a different update is a `422` and nothing is accepted. If no durable store can take the request, `503`: `outcome_unknown` when a store timed out and may have taken it, else nothing was accepted.',
        tags: ['progress'],
        security: bearer('progress:write'),
        parameters: [
          ...requestId,
          {
            name: 'Idempotency-Key',
            in: 'header',
            required: false,
            description:
              'Single-update bodies only (a batch carries keys in its updates): 1–128 characters; must equal the update’s `idempotency_key` if it has one. draft-ietf-httpapi-idempotency-key-header: the same key with a different update is a `422`.',
            schema: { type: 'string', minLength: 1, maxLength: 128 },
          },
        ],
        requestBody: {
          description: 'One update, or `{ "updates": [...] }`',
          required: true,
          content: {
            'application/json': {
              schema: {
                oneOf: [ref('schemas', 'ProgressUpdate'), ref('schemas', 'ProgressBatch')],
              },
              examples: {
                single: {
                  summary: 'One update',
                  value: {
                    user_id: 'demo-user-1',
                    task_id: 'onboarding',
                    status: 'in_progress',
                    progress: 40,
                    occurred_at: '2026-11-26T09:00:00Z',
                  },
                },
                batch: {
                  summary: 'A batch',
                  value: {
                    updates: [
                      {
                        user_id: 'demo-user-1',
                        task_id: 'onboarding',
                        status: 'completed',
                        progress: 100,
                        occurred_at: '2026-11-26T09:05:00Z',
                        idempotency_key: 'onboarding-done-1',
                      },
                    ],
                  },
                },
              },
            },
          },
        },
        responses: {
          '202': {
            description: 'Accepted, durably',
            headers: headers(['Location', ...RATE_LIMIT]),
            content: json('ProgressAccepted', {
              batch_id: '9b2e4c1a-3f5d-4e6b-8a7c-0d1e2f3a4b5c',
              accepted: 3,
              duplicates: 1,
              status: 'queued',
            }),
          },
          '400': problems(400, ['validation_failed', 'invalid_json'], {
            description: 'Invalid body or `Idempotency-Key`: `errors` lists every field',
            headers: headers([], RATE_LIMIT),
          }),
          ...protectedResponses(true),
          '404': problems(404, ['user_not_found'], {
            description: 'A user is unknown or not granted; nothing was accepted',
            headers: headers([], RATE_LIMIT),
          }),
          '413': ref('responses', 'BodyTooLarge'),
          '415': ref('responses', 'UnsupportedMediaType'),
          '422': problems(422, ['idempotency_key_reused', 'update_refused'], {
            description: 'Nothing was accepted; retrying the same request will not help',
            headers: headers([], RATE_LIMIT),
          }),
          '500': ref('responses', 'InternalError'),
          '503': unavailable(
            ['configuration_error', 'progress_unavailable', 'buffer_full', 'outcome_unknown'],
            [],
            'Unavailable; retry after `Retry-After` seconds. The `code` says what was accepted: `outcome_unknown` means a store timed out and may have taken the updates (retry the same request with the same idempotency keys), every other code means nothing was.',
          ),
        },
      },
    },
    '/api/v1/agent/progress/batches/{batchId}': {
      parameters: [ref('parameters', 'BatchId')],
      get: {
        operationId: 'getProgressBatch',
        summary: 'Where a batch is',
        description: 'Needs scope `progress:write`; only the agent that created the batch sees it.',
        tags: ['progress'],
        security: bearer('progress:write'),
        parameters: requestId,
        responses: {
          '200': {
            description: 'The batch',
            headers: headers(RATE_LIMIT),
            content: json('BatchStatus', {
              batch_id: '9b2e4c1a-3f5d-4e6b-8a7c-0d1e2f3a4b5c',
              status: 'committed',
              accepted: 3,
              committed_at: '2026-11-26T09:00:05.000Z',
            }),
          },
          '400': problems(400, ['validation_failed'], {
            description: '`batchId` holds U+0000 or an unpaired surrogate',
            headers: headers([], RATE_LIMIT),
          }),
          ...protectedResponses(true),
          '404': problems(404, ['not_found'], {
            description: 'No such batch, or another agent’s',
            headers: headers([], RATE_LIMIT),
          }),
          '500': ref('responses', 'InternalError'),
          '503': unavailable(['configuration_error', 'progress_unavailable']),
        },
      },
    },
  }
}

function healthOperations(): Record<string, PathItem> {
  const health = (description: string, extra: HeaderName[] = []) => ({
    description,
    headers: headers(extra),
    content: { 'application/health+json': { schema: ref('schemas', 'PublicHealth') } },
  })
  return {
    '/health': {
      get: {
        operationId: 'getLiveness',
        summary: 'Liveness',
        description: 'Calls no upstream. `status` is the worst of the checks run.',
        tags: ['health'],
        parameters: requestId,
        responses: {
          '200': health('Alive'),
          '500': ref('responses', 'InternalError'),
        },
      },
    },
    '/health/ready': {
      get: {
        operationId: 'getReadiness',
        summary: 'Readiness',
        description:
          'Checks the configuration, the database and Redis (with short timeouts). `503` whenever the token endpoint would answer `503`: the configuration fails closed, no database is configured or it does not answer, or its circuit is open. A probe’s own short deadline never counts against the shared database circuit.',
        tags: ['health'],
        parameters: requestId,
        responses: {
          '200': health('Ready (`pass` or `warn`)'),
          '503': health('Not ready (`fail`)', ['Retry-After']),
          '500': ref('responses', 'InternalError'),
        },
      },
    },
    '/api/v1/agent/health': {
      post: {
        operationId: 'reportAgentHealth',
        summary: 'Heartbeat and health report',
        description:
          'Any valid access token (no scope). The optional body is the agent’s heartbeat; the answer is `200` whatever the health. Readable even when the configuration fails closed, as long as the token keys are sound. `application/<subtype>+json` bodies are accepted too.',
        tags: ['health'],
        security: bearer(),
        parameters: requestId,
        requestBody: {
          description: 'The heartbeat (optional)',
          required: false,
          content: {
            'application/json': {
              schema: ref('schemas', 'Heartbeat'),
              example: { status: 'ok', version: '1.4.2', details: { queue: 0 } },
            },
          },
        },
        responses: {
          '200': {
            description: 'The report',
            headers: headers(RATE_LIMIT),
            content: json('HealthReport'),
          },
          '400': problems(400, ['validation_failed', 'invalid_json'], {
            description: 'Invalid heartbeat',
            headers: headers([], RATE_LIMIT),
          }),
          ...protectedResponses(false),
          '413': ref('responses', 'BodyTooLarge'),
          '415': ref('responses', 'UnsupportedMediaType'),
          '500': ref('responses', 'InternalError'),
          '503': unavailable(['configuration_error']),
        },
      },
    },
  }
}

function internalOperations(): Record<string, PathItem> {
  const flush = (method: 'get' | 'post'): Operation => ({
    operationId: method === 'post' ? 'flushProgress' : 'flushProgressCron',
    summary:
      method === 'post'
        ? 'Drain the progress buffer'
        : 'Drain the progress buffer (GET, as Vercel Cron sends it)',
    description:
      'Authenticated with `Authorization: Bearer <CRON_SECRET>` (the scheme name in any case). Wrong guesses spend the same failure budgets as the token endpoint (`429` when spent); a `CRON_SECRET` the configuration refuses closes the route (`503 configuration_error`). Workers run the same job from `scheduled()`.',
    tags: ['internal'],
    security: [{ cronSecret: [] }],
    parameters: requestId,
    responses: {
      '200': { description: 'Drained', headers: headers(), content: json('FlushReport') },
      '401': problems(401, ['invalid_token'], {
        description: 'Missing or wrong cron secret',
        headers: headers(['WWW-Authenticate']),
      }),
      ...(method === 'post' ? { '413': ref('responses', 'BodyTooLarge') } : {}),
      '429': ref('responses', 'RateLimited'),
      '500': ref('responses', 'InternalError'),
      '503': unavailable(['buffer_unavailable', 'configuration_error']),
    },
  })
  return { '/api/v1/internal/flush': { get: flush('get'), post: flush('post') } }
}

function docsOperations(): Record<string, PathItem> {
  const cacheable = headers([], [], {
    'Cache-Control': { schema: { type: 'string', const: 'public, max-age=300' } },
  })
  return {
    '/openapi.json': {
      get: {
        operationId: 'getOpenApiDocument',
        summary: 'This document',
        description: 'OpenAPI 3.1, generated from the schemas that validate requests.',
        tags: ['docs'],
        parameters: requestId,
        responses: {
          '200': {
            description: 'The document',
            headers: cacheable,
            content: {
              'application/json': {
                schema: { type: 'object', required: ['openapi', 'info', 'paths'] },
              },
            },
          },
          '500': ref('responses', 'InternalError'),
        },
      },
    },
    '/docs': {
      get: {
        operationId: 'getDocsPage',
        summary: 'Interactive reference',
        description:
          'An HTML page (Swagger UI, pinned, with subresource integrity) over this document.',
        tags: ['docs'],
        parameters: requestId,
        responses: {
          '200': {
            description: 'The page',
            headers: cacheable,
            content: { 'text/html': { schema: { type: 'string' } } },
          },
          '500': ref('responses', 'InternalError'),
        },
      },
    },
  }
}

// --- the document --------------------------------------------------------------------------

const DESCRIPTION = `Short-lived tokens, user context and progress reporting for AI agents.

**Conventions.** JSON in and out. Bodies over ${MAX_BODY_BYTES / 1024} KiB: \`413\`; a wrong \`Content-Type\`: \`415\`; unknown fields in a JSON body: \`400\` with their path in \`errors\`. Errors are RFC 9457 problem details (\`application/problem+json\`) with a stable \`code\`; every code is listed in \`x-problem-types\` and, per response, in \`x-problem-codes\`. Every response carries \`X-Request-Id\` and \`Server-Timing\`. Protected routes take \`Authorization: Bearer <access token>\` (\`401\` + \`WWW-Authenticate: Bearer error="invalid_token"\`; \`403\` + \`error="insufficient_scope"\`), send \`RateLimit-*\` headers, and answer \`429\` + \`Retry-After\` when limited. A \`503\` carries \`Retry-After\`. A request for a path that exists, with a method it does not take, gets the \`MethodNotAllowed\` response (\`405\` with \`Allow\`; \`OPTIONS\` gets \`204\` with \`Allow\`); one that matches no path gets the \`NotFound\` response (\`404 not_found\`); either gets \`413\` first when its body is too large. A \`503\` whose code ends in \`_unavailable\` means nothing was done; \`outcome_unknown\` means a store timed out and the write may have landed; \`revocation_partial\` says what did happen.`

export function buildDocument(version: string): OpenApiDocument {
  const scopes = Object.fromEntries(
    SCOPES.map((s) => [s, s === 'context:read' ? 'Read users’ context' : 'Report users’ progress']),
  )
  return {
    openapi: '3.1.0',
    jsonSchemaDialect: DIALECT,
    info: {
      title: 'Agent API',
      version,
      description: DESCRIPTION,
      license: { name: 'Proprietary' },
    },
    servers: [{ url: '/', description: 'This deployment' }],
    tags: [
      { name: 'tokens', description: 'Access and refresh tokens (RFC 6749, RFC 7009)' },
      { name: 'context', description: 'What an agent may know about a user' },
      { name: 'progress', description: 'Users’ progress on tasks' },
      { name: 'health', description: 'Liveness, readiness and the health report' },
      { name: 'internal', description: 'Scheduled jobs' },
      { name: 'docs', description: 'This document' },
    ],
    paths: {
      ...healthOperations(),
      ...tokenOperations(),
      ...contextOperations(),
      ...progressOperations(),
      ...internalOperations(),
      ...docsOperations(),
    },
    components: {
      schemas: schemas(),
      responses: sharedResponses(),
      parameters: parameters(),
      securitySchemes: {
        bearerAuth: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description:
            'An access token from POST /api/v1/agent/token (HS256, `typ: at+jwt`). Requirement arrays name the scope the route needs.',
        },
        agentOAuth: {
          type: 'oauth2',
          description: 'The same access tokens, obtained by the client credentials grant.',
          flows: {
            clientCredentials: {
              tokenUrl: '/api/v1/agent/token',
              refreshUrl: '/api/v1/agent/token',
              scopes,
            },
          },
        },
        clientBasic: {
          type: 'http',
          scheme: 'basic',
          description:
            'Client credentials (RFC 6749 §2.3.1): agent id and secret, each form-urlencoded.',
        },
        cronSecret: {
          type: 'http',
          scheme: 'bearer',
          description: 'The `CRON_SECRET` of the deployment (Vercel Cron sends it).',
        },
      },
    },
    'x-problem-types': PROBLEM_TYPES.map((p) => ({
      code: p.code,
      status: p.status,
      type: `/problems/${p.code}`,
      description: p.description,
    })),
  }
}

const built = new Map<string, OpenApiDocument>()

/** The document for this isolate's version, built on first use. */
export function openApiDocument(version: string): OpenApiDocument {
  let doc = built.get(version)
  if (!doc) {
    doc = buildDocument(version)
    built.set(version, doc)
  }
  return doc
}
