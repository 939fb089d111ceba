// What the OpenAPI document says beyond the operations: info, servers, tags, the security
// schemes, the response headers every operation may name, the shared responses and the
// problem catalogue. The operations themselves are defined beside their handlers
// (src/routes/*.ts) and the document is generated from them (./generate.ts).
import { MAX_BODY_BYTES } from '../contract/common.ts'
import { CACHE_STATUSES } from '../contract/context.ts'
import { PROBLEM_TYPES } from '../contract/problems.ts'
import { SCOPES } from '../contract/token.ts'
import {
  type HeaderName,
  type JsonSchema,
  RATE_LIMIT,
  type ResponseDoc,
  type SharedResponse,
} from '../http/operation.ts'

export { MAX_BODY_BYTES }

/** A header whose value is a decimal integer (OpenAPI describes the value, not its text). */
const integer = (minimum: number): JsonSchema => ({ type: 'integer', minimum })

/** Every response header the operations name, described once. */
export const HEADERS: Record<HeaderName, { description: string; schema: JsonSchema }> = {
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
  Vary: {
    description: 'The request headers the answer depends on (RFC 9110 §12.5.5).',
    schema: { type: 'string' },
  },
}

/** Answers of any operation, referenced from each (`#/components/responses/…`). */
export const SHARED_RESPONSES: Record<
  SharedResponse | 'InternalError' | 'MethodNotAllowed' | 'NotFound',
  ResponseDoc
> = {
  RateLimited: {
    description: 'Rate limited',
    problems: ['rate_limited'],
    headers: ['Retry-After', ...RATE_LIMIT],
  },
  BodyTooLarge: {
    description: `The body exceeds ${MAX_BODY_BYTES} bytes (checked before routing)`,
    problems: ['body_too_large'],
  },
  UnsupportedMediaType: {
    description: 'Wrong `Content-Type`',
    problems: ['unsupported_media_type'],
    headers: ['Accept-Post'],
    optionalHeaders: RATE_LIMIT,
  },
  InternalError: {
    description: 'A bug (never bad input): the answer has no internals',
    problems: ['internal_error'],
    optionalHeaders: RATE_LIMIT,
  },
  MethodNotAllowed: {
    description:
      'The path exists, but not with this method (the answer to any such request). `OPTIONS` on an existing path answers `204` with `Allow`.',
    problems: ['method_not_allowed'],
    headers: ['Allow'],
  },
  NotFound: {
    description:
      'No route for this method and path (the answer to any request no operation matches)',
    problems: ['not_found'],
  },
}

const DESCRIPTION = `Short-lived tokens, user context and progress reporting for AI agents.

**Conventions.** JSON in and out. Bodies over ${MAX_BODY_BYTES / 1024} KiB: \`413\`; a wrong \`Content-Type\`: \`415\`; unknown fields in a JSON body: \`400\` with their path in \`errors\`. Errors are RFC 9457 problem details (\`application/problem+json\`) with a stable \`code\`; every code is listed in \`x-problem-types\` and, per response, in \`x-problem-codes\`. Every response carries \`X-Request-Id\` and \`Server-Timing\`. Protected routes take \`Authorization: Bearer <access token>\` (\`401\` + \`WWW-Authenticate: Bearer\` with \`resource_metadata\`, and \`error="invalid_token"\` when a token was sent; \`403\` + \`error="insufficient_scope"\`). The OAuth endpoints (token, revoke, introspect) answer errors as \`application/json\` with OAuth's \`error\` and \`error_description\` beside the problem members (RFC 6749 §5.2), send \`RateLimit-*\` headers, and answer \`429\` + \`Retry-After\` when limited. A \`503\` carries \`Retry-After\`. A request for a path that exists, with a method it does not take, gets the \`MethodNotAllowed\` response (\`405\` with \`Allow\`; \`OPTIONS\` gets \`204\` with \`Allow\`); one that matches no path gets the \`NotFound\` response (\`404 not_found\`); either gets \`413\` first when its body is too large. A \`503\` whose code ends in \`_unavailable\` means nothing was done; \`outcome_unknown\` means a store timed out and the write may have landed; \`revocation_partial\` says what did happen.`

/** The document around the operations; `responses` and `schemas` come from the generator. */
export function documentFrame(version: string) {
  const scopes = Object.fromEntries(
    SCOPES.map((s) => [s, s === 'context:read' ? 'Read users’ context' : 'Report users’ progress']),
  )
  return {
    openapi: '3.1.0' as const,
    // No jsonSchemaDialect: the default (the OAS 3.1 base dialect, JSON Schema 2020-12 plus
    // OpenAPI's keywords) describes our schemas; Swagger UI supports only that one and put a
    // warning over the page when the document named plain 2020-12.
    info: {
      title: 'Agent API',
      version,
      description: DESCRIPTION,
      license: { name: 'Proprietary' },
    },
    servers: [{ url: '/', description: 'This deployment' }],
    tags: [
      {
        name: 'tokens',
        description: 'Access and refresh tokens (RFC 6749, RFC 7009, RFC 7662, RFC 8707)',
      },
      {
        name: 'discovery',
        description:
          'Metadata and keys for OAuth clients and resource servers (RFC 8414, RFC 9728)',
      },
      { name: 'context', description: 'What an agent may know about a user' },
      { name: 'progress', description: 'Users’ progress on tasks' },
      { name: 'mcp', description: 'The same services as MCP tools (Model Context Protocol)' },
      { name: 'health', description: 'Liveness, readiness and the health report' },
      { name: 'internal', description: 'Scheduled jobs' },
      { name: 'docs', description: 'This document' },
    ],
    parameters: {
      XRequestId: {
        name: 'X-Request-Id',
        in: 'header' as const,
        required: false,
        description:
          'Your id for this request (1–128 of `[A-Za-z0-9_=-]`): echoed in `X-Request-Id`, logs and problem bodies. Otherwise one is made.',
        schema: { type: 'string', minLength: 1, maxLength: 128, pattern: '^[\\w=-]+$' },
      },
    },
    securitySchemes: {
      bearerAuth: {
        type: 'http',
        scheme: 'bearer',
        bearerFormat: 'JWT',
        description:
          'An access token from POST /api/v1/agent/token (RFC 9068 `at+jwt`, ES256 or EdDSA verifiable with /.well-known/jwks.json; HS256 where only a secret is configured), for this API’s resource (`aud`). Requirement arrays name the scope the route needs. A 401/403 challenge names the resource’s metadata (`resource_metadata`, RFC 9728).',
      },
      agentOAuth: {
        type: 'oauth2',
        description:
          'The same access tokens, obtained by the client credentials grant (metadata: /.well-known/oauth-authorization-server).',
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
          'Client credentials (RFC 6749 §2.3.1): agent id and secret, each form-urlencoded. An agent that registered a key authenticates instead with RFC 7523 `private_key_jwt` (`client_assertion_type`, `client_assertion` in the form body).',
      },
      dpopAuth: {
        type: 'http',
        scheme: 'DPoP',
        description:
          'RFC 9449: a DPoP-bound access token (`cnf.jkt`; `token_type: DPoP`) as `Authorization: DPoP <token>`, with a `DPoP` header holding a fresh proof by its key (`htm`, `htu`, `iat`, `ath`, a once-only `jti`, and the server nonce when `DPOP_NONCE_TTL_SECONDS` is set). Accepted wherever `bearerAuth` is; a bound token sent as Bearer is refused (`401`, `WWW-Authenticate: DPoP … algs="…"`).',
      },
      cronSecret: {
        type: 'http',
        scheme: 'bearer',
        description: 'The `CRON_SECRET` of the deployment (Vercel Cron sends it).',
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
