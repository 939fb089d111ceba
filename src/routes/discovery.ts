// Discovery: GET /.well-known/oauth-authorization-server (RFC 8414),
// /.well-known/oauth-protected-resource and …/mcp (RFC 9728), /.well-known/jwks.json (RFC 7517).
// Public and cacheable for five minutes. The documents are built in src/auth/metadata.ts; the
// issuer is PUBLIC_URL (outside development the routes fail closed without it: metadata must
// never name an issuer guessed from a request's Host header).
import { type Context, Hono } from 'hono'
import { authorizationServerMetadata, protectedResourceMetadata } from '../auth/metadata.ts'
import {
  AUTHORIZATION_SERVER_METADATA,
  JWKS_PATH,
  MCP_PATH,
  PROTECTED_RESOURCE_METADATA,
} from '../auth/resources.ts'
import {
  authorizationServerMetadata as asSchema,
  jwks as jwksSchema,
  protectedResourceMetadata as prmSchema,
} from '../contract/discovery.ts'
import { problems } from '../contract/problem.ts'
import { issuerFor, keyRing } from '../http/auth.ts'
import type { AppEnv } from '../http/context.ts'
import { type Described, type Operation, unavailable } from '../http/operation.ts'

const CACHEABLE = 'public, max-age=300'

const answer = (description: string, schema: Described) => ({
  '200': {
    description,
    headerDocs: { 'Cache-Control': { schema: { type: 'string', const: CACHEABLE } } },
    content: { 'application/json': { schema } },
  },
  '503': unavailable(
    ['configuration_error'],
    'Not configured for this environment (no `PUBLIC_URL`, or signing keys that cannot be used)',
  ),
})

export const getAuthorizationServerMetadata = {
  method: 'get',
  path: AUTHORIZATION_SERVER_METADATA,
  operationId: 'getAuthorizationServerMetadata',
  summary: 'Authorization server metadata (RFC 8414)',
  description:
    'Where the token, revocation, introspection and JWKS endpoints are, and what they support. `issuer` is `PUBLIC_URL`.',
  tag: 'discovery',
  responses: answer('The metadata', asSchema),
} as const satisfies Operation

export const getProtectedResourceMetadata = {
  method: 'get',
  path: PROTECTED_RESOURCE_METADATA,
  operationId: 'getProtectedResourceMetadata',
  summary: 'Protected resource metadata of the API (RFC 9728)',
  description:
    'The REST API as a protected resource: its identifier (`PUBLIC_URL`, the default `aud` of access tokens) and its authorization server. Every `401`/`403` challenge names this URL as `resource_metadata`.',
  tag: 'discovery',
  responses: answer('The metadata', prmSchema),
} as const satisfies Operation

export const getMcpProtectedResourceMetadata = {
  method: 'get',
  path: `${PROTECTED_RESOURCE_METADATA}${MCP_PATH}`,
  operationId: 'getMcpProtectedResourceMetadata',
  summary: 'Protected resource metadata of the MCP endpoint (RFC 9728)',
  description:
    'The MCP endpoint (`PUBLIC_URL/mcp`) as a protected resource; a token for it is requested with `resource=PUBLIC_URL/mcp` (RFC 8707).',
  tag: 'discovery',
  responses: answer('The metadata', prmSchema),
} as const satisfies Operation

export const getJwks = {
  method: 'get',
  path: JWKS_PATH,
  operationId: 'getJwks',
  summary: 'The keys that verify access tokens (RFC 7517)',
  description:
    'The current signing key and any key still accepted during a rotation. Empty (`{"keys":[]}`) where only an HS256 secret is configured.',
  tag: 'discovery',
  responses: answer('The key set', jwksSchema),
} as const satisfies Operation

export const discoveryOperations: readonly Operation[] = [
  getAuthorizationServerMetadata,
  getProtectedResourceMetadata,
  getMcpProtectedResourceMetadata,
  getJwks,
]

/** The deployment's identity, or 503 when it has no PUBLIC_URL where one is required. */
function identity(c: Context<AppEnv>) {
  const { config } = c.get('services')
  if (!config.publicUrl && config.environment !== 'development') {
    throw problems.unavailable('configuration_error', 'PUBLIC_URL is not configured', 300)
  }
  return issuerFor(c)
}

const json = (c: Context<AppEnv>, body: unknown) =>
  c.json(body, 200, { 'Cache-Control': CACHEABLE })

export const discoveryRoutes = new Hono<AppEnv>()
  .get(getAuthorizationServerMetadata.path, (c) =>
    json(c, authorizationServerMetadata(identity(c))),
  )
  .get(getProtectedResourceMetadata.path, (c) => {
    const issuer = identity(c)
    return json(c, protectedResourceMetadata(issuer, issuer.api))
  })
  .get(getMcpProtectedResourceMetadata.path, (c) => {
    const issuer = identity(c)
    return json(c, protectedResourceMetadata(issuer, issuer.mcp))
  })
  .get(getJwks.path, async (c) => {
    identity(c)
    return json(c, (await keyRing(c)).jwks)
  })
