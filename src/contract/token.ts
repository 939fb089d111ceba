// POST /api/v1/agent/token, /token/revoke and /token/introspect (CONTRACT.md "Access tokens",
// RFC 6749, RFC 7009, RFC 7662, RFC 8707): the request bodies (JSON and form), and the answers.
import * as z from 'zod/mini'
import { boundedString, count, ENVIRONMENTS, identifier, instant, onFirstUse } from './common.ts'

export const SCOPES = ['context:read', 'progress:write'] as const
export type Scope = (typeof SCOPES)[number]

/** RFC 6749 §3.3 scope syntax: space-separated tokens of visible ASCII except " and \. */
export const scopeString = z.string().check(
  // Visible ASCII only: never NUL or a surrogate, so storable by construction.
  z.maxLength(1024),
  z.regex(/^[\x21\x23-\x5B\x5D-\x7E]+( [\x21\x23-\x5B\x5D-\x7E]+)*$/, 'Scopes are space-separated'),
)

const secret = boundedString(1, 1024)
const refreshToken = boundedString(1, 512)
const describe = <S extends z.ZodMiniType>(schema: S, text: string) =>
  schema.check(z.describe(text)) as S

/** RFC 8707 §2: the resource a token is asked for (an absolute URI; ours are listed in the
 * protected-resource metadata). */
const resourceUri = describe(
  boundedString(1, 2048),
  'RFC 8707: the resource the access token is for — this API (`PUBLIC_URL`, the default) or its MCP endpoint (`PUBLIC_URL/mcp`); one per request. Anything else: `invalid_target`.',
)

/** RFC 8693 §2.1: the logical name of the service a token is for. */
const audienceTarget = describe(
  boundedString(1, 2048),
  'RFC 8693 §2.1 (taken on every grant, as many servers do): the service the token is for, by name; here the names are the resource identifiers (`PUBLIC_URL` or `PUBLIC_URL/mcp`), so it is another way to say `resource`. One per request; with `resource`, the same one. Anything else: `invalid_target`.',
)

const SCOPE_TEXT = `Space-separated scopes (${SCOPES.join(', ')}); default: all the agent may hold.`

/** JSON form 1: `{ agent_id, agent_secret, scope? }` (grant_type optional). */
export const jsonClientCredentials = z
  .strictObject({
    grant_type: z.optional(
      describe(z.literal('client_credentials'), 'Optional; when present, `client_credentials`.'),
    ),
    agent_id: describe(identifier, 'The agent’s id.'),
    agent_secret: describe(
      secret,
      'The agent’s own secret, or the environment’s shared agent secret.',
    ),
    scope: z.optional(describe(scopeString, SCOPE_TEXT)),
    resource: z.optional(resourceUri),
    audience: z.optional(audienceTarget),
  })
  .register(z.globalRegistry, {
    id: 'TokenRequestClientCredentials',
    description: 'JSON client credentials (the contract’s form 1).',
  })

/**
 * JSON refresh: `{ grant_type: "refresh_token", refresh_token, scope? }`, with the client's
 * credentials in `agent_id`/`agent_secret` or by HTTP Basic (RFC 6749 §6: it must authenticate).
 */
export const jsonRefresh = z
  .strictObject({
    grant_type: z.literal('refresh_token'),
    refresh_token: describe(
      refreshToken,
      'A refresh token of this environment; each use returns a new one, re-use revokes its family and the access tokens it issued.',
    ),
    scope: z.optional(describe(scopeString, 'At most the original grant’s scopes.')),
    resource: z.optional(resourceUri),
    audience: z.optional(audienceTarget),
    agent_id: z.optional(
      describe(identifier, 'The agent’s id (or send the credentials by HTTP Basic).'),
    ),
    agent_secret: z.optional(
      describe(secret, 'The agent’s secret (or send the credentials by HTTP Basic).'),
    ),
  })
  .register(z.globalRegistry, {
    id: 'TokenRequestRefresh',
    description:
      'JSON refresh: exchanges a refresh token (which rotates). The client authenticates (RFC 6749 §6): with `agent_id`/`agent_secret` here, or by HTTP Basic (not both).',
  })

/** RFC 8693 §2.1 and §3: the grant type and the only token type exchanged here. */
export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange'
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token'
/** RFC 7523 §2.2: the client assertion type of `private_key_jwt`. */
export const JWT_BEARER_ASSERTION = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'

const agentAccessToken = boundedString(1, 8192)
const accessTokenType = describe(
  z.literal(ACCESS_TOKEN_TYPE),
  `\`${ACCESS_TOKEN_TYPE}\` (RFC 8693 §3).`,
)

/**
 * RFC 8693 token exchange: the agent trades its own access token for one that acts for a user
 * it holds a grant for (`requested_subject`, the name Keycloak uses for it).
 */
export const jsonTokenExchange = z
  .strictObject({
    grant_type: z.literal(TOKEN_EXCHANGE_GRANT),
    subject_token: describe(
      agentAccessToken,
      'The agent’s own access token (or a token it got by exchange, for the same user only).',
    ),
    subject_token_type: accessTokenType,
    actor_token: z.optional(
      describe(
        agentAccessToken,
        'Optional: the agent’s access token, when `subject_token` is another of its own.',
      ),
    ),
    actor_token_type: z.optional(accessTokenType),
    requested_subject: describe(
      identifier,
      'The user the new token acts for; the agent must hold a grant for it.',
    ),
    requested_token_type: z.optional(accessTokenType),
    scope: z.optional(
      describe(scopeString, 'At most the subject token’s scopes (default: all of them).'),
    ),
    resource: z.optional(resourceUri),
    audience: z.optional(audienceTarget),
  })
  .check(
    // RFC 8693 §2.1: actor_token_type is REQUIRED when actor_token is present, and MUST NOT
    // be included otherwise.
    z.refine((v) => (v.actor_token === undefined) === (v.actor_token_type === undefined), {
      message: 'Sent with actor_token, and only with it (RFC 8693 §2.1)',
      path: ['actor_token_type'],
    }),
  )
  .register(z.globalRegistry, {
    id: 'TokenRequestTokenExchange',
    description:
      'RFC 8693: a delegated token for one user. Its `sub` is the user, `act.sub` the agent; its scope at most the subject token’s; it expires with the subject token or sooner (`DELEGATED_TOKEN_TTL_SECONDS`). No refresh token.',
  })

export type TokenRequest =
  | z.input<typeof jsonClientCredentials>
  | z.input<typeof jsonRefresh>
  | z.input<typeof jsonTokenExchange>

/** RFC 7009 revocation request (JSON form; the form encoding carries the same fields). */
export const jsonRevoke = z
  .strictObject({
    token: describe(
      boundedString(1, 8192),
      'A refresh token, an access token, or an access token’s `jti`.',
    ),
    token_type_hint: z.optional(
      describe(z.enum(['access_token', 'refresh_token']), 'Where to look first.'),
    ),
    agent_id: z.optional(identifier),
    agent_secret: z.optional(secret),
  })
  .register(z.globalRegistry, {
    id: 'RevokeRequest',
    description:
      'RFC 7009: authenticate with `agent_id`/`agent_secret`, HTTP Basic or a bearer access token of the same agent.',
  })

export type RevokeRequest = z.input<typeof jsonRevoke>

/** RFC 7523 §2.2 `private_key_jwt`, for agents that registered a public key (form only). */
const clientAssertionFields = {
  client_assertion_type: z.optional(
    describe(z.literal(JWT_BEARER_ASSERTION), `\`${JWT_BEARER_ASSERTION}\` (RFC 7523).`),
  ),
  client_assertion: z.optional(
    describe(
      boundedString(1, 8192),
      'A JWT signed with the agent’s registered key: `iss` = `sub` = the agent, `aud` = the issuer or the token endpoint, a short `exp`, a `jti` used once.',
    ),
  ),
}

/** Form fields of the token endpoints, composed of the very leaves the JSON schemas use. */
export const tokenForm = z
  .object({
    grant_type: describe(
      z.enum(['client_credentials', 'refresh_token', TOKEN_EXCHANGE_GRANT]),
      '`client_credentials`, `refresh_token` or RFC 8693 token exchange.',
    ),
    client_id: z.optional(
      describe(jsonClientCredentials.shape.agent_id, 'The agent’s id (or send it by HTTP Basic).'),
    ),
    client_secret: z.optional(
      describe(
        jsonClientCredentials.shape.agent_secret,
        'The agent’s secret (or send it by HTTP Basic).',
      ),
    ),
    refresh_token: z.optional(
      describe(
        jsonRefresh.shape.refresh_token,
        'Required with `grant_type=refresh_token`, together with client authentication (Basic or `client_id`/`client_secret`).',
      ),
    ),
    scope: jsonClientCredentials.shape.scope,
    resource: jsonClientCredentials.shape.resource,
    subject_token: z.optional(jsonTokenExchange.shape.subject_token),
    subject_token_type: z.optional(accessTokenType),
    actor_token: jsonTokenExchange.shape.actor_token,
    actor_token_type: z.optional(accessTokenType),
    requested_subject: z.optional(jsonTokenExchange.shape.requested_subject),
    requested_token_type: z.optional(accessTokenType),
    audience: jsonClientCredentials.shape.audience,
    ...clientAssertionFields,
  })
  .register(z.globalRegistry, {
    id: 'TokenRequestForm',
    description:
      'RFC 6749 §4.4 and §6. Client credentials in the body (`client_id`, `client_secret`) or by HTTP Basic, never both (beside Basic, a body `client_id` alone only names the client, the same one). Parameters may not repeat (a repeated `resource` or `audience` is `invalid_target`: a token here has one audience); each value is at most 8192 characters; unknown parameters are ignored.',
  })

export const revokeForm = z
  .object({
    token: jsonRevoke.shape.token,
    token_type_hint: z.optional(boundedString(0, 64)),
    client_id: jsonRevoke.shape.agent_id,
    client_secret: jsonRevoke.shape.agent_secret,
    ...clientAssertionFields,
  })
  .register(z.globalRegistry, {
    id: 'RevokeRequestForm',
    description:
      'RFC 7009 §2.1, form-encoded. A `token_type_hint` other than `access_token`/`refresh_token` is ignored.',
  })

/** RFC 7662 §2.1, JSON (the form encoding carries the same fields). */
export const jsonIntrospect = z
  .strictObject({
    token: describe(boundedString(1, 8192), 'An access token or a refresh token.'),
    token_type_hint: z.optional(
      describe(z.enum(['access_token', 'refresh_token']), 'Only a hint: every type is searched.'),
    ),
    agent_id: z.optional(identifier),
    agent_secret: z.optional(secret),
  })
  .register(z.globalRegistry, {
    id: 'IntrospectionRequest',
    description:
      'RFC 7662: authenticate with `agent_id`/`agent_secret` or HTTP Basic (not both). Only the caller’s own tokens are reported active.',
  })

export const introspectForm = z
  .object({
    token: jsonIntrospect.shape.token,
    token_type_hint: z.optional(boundedString(0, 64)),
    client_id: jsonIntrospect.shape.agent_id,
    client_secret: jsonIntrospect.shape.agent_secret,
    ...clientAssertionFields,
  })
  .register(z.globalRegistry, {
    id: 'IntrospectionRequestForm',
    description: 'RFC 7662 §2.1, form-encoded; client credentials here or by HTTP Basic.',
  })

/** OAuth error codes the token endpoints answer with (RFC 6749 §5.2, RFC 8707 §2). */
export type OAuthError =
  | 'invalid_request'
  | 'invalid_client'
  | 'invalid_grant'
  | 'unsupported_grant_type'
  | 'invalid_scope'
  | 'invalid_target'
  | 'unsupported_response_type'
  | 'invalid_dpop_proof'
  | 'use_dpop_nonce'

export const tokenResponse = onFirstUse(() =>
  z
    .strictObject({
      access_token: describe(
        z.string(),
        'JWT (`typ: at+jwt`, RFC 9068): ES256 (or EdDSA) with a key in the JWKS, or HS256 where only a secret is configured.',
      ),
      token_type: describe(
        z.enum(['Bearer', 'DPoP']),
        '`DPoP` when the token is bound to the DPoP key of the request’s proof (RFC 9449 §5).',
      ),
      issued_token_type: z.optional(
        describe(z.literal(ACCESS_TOKEN_TYPE), 'Token exchange only (RFC 8693 §2.2.1).'),
      ),
      expires_in: describe(count(), 'Access token lifetime in seconds.'),
      expires_at: describe(instant(), 'When the access token expires (RFC 3339).'),
      refresh_token: z.optional(describe(z.string(), 'Absent after a token exchange.')),
      refresh_expires_in: z.optional(describe(count(), 'Refresh token lifetime in seconds.')),
      scope: describe(scopeString, 'The granted scopes.'),
      environment: z.enum(ENVIRONMENTS),
    })
    .register(z.globalRegistry, {
      id: 'TokenResponse',
      description: 'Tokens (`Cache-Control: no-store`).',
    }),
)
type AnyTokenResponse = z.output<ReturnType<typeof tokenResponse>>
/** Client credentials and refresh: always with a refresh token. */
export type TokenResponse = AnyTokenResponse & { refresh_token: string; refresh_expires_in: number }
/** Token exchange (RFC 8693 §2.2.1): no refresh token. */
export type ExchangedTokenResponse = Omit<
  AnyTokenResponse,
  'refresh_token' | 'refresh_expires_in'
> & { issued_token_type: typeof ACCESS_TOKEN_TYPE }

/** RFC 7009 §2.2: the body of a successful revocation carries nothing. */
export const revokeResponse = onFirstUse(() =>
  z.strictObject({}).register(z.globalRegistry, {
    id: 'RevokeResponse',
    description: 'Empty: a well-formed revocation always succeeds (RFC 7009).',
  }),
)

const seconds = () => z.number().check(z.int(), z.minimum(0))

/** RFC 7662 §2.2. Inactive: `{ "active": false }` and nothing else. */
export const introspectionResponse = onFirstUse(() =>
  z
    .union([
      z.strictObject({ active: z.literal(false) }),
      z.strictObject({
        active: z.literal(true),
        token_type: describe(
          z.enum(['Bearer', 'DPoP', 'refresh_token']),
          '`Bearer` for an access token, `DPoP` for a DPoP-bound one (as the token endpoint issued it), `refresh_token` for a refresh token.',
        ),
        scope: scopeString,
        client_id: identifier,
        sub: identifier,
        aud: describe(z.string(), 'The resource the token is for.'),
        iss: describe(z.string(), 'The issuer (`PUBLIC_URL`).'),
        exp: seconds(),
        iat: seconds(),
        nbf: z.optional(seconds()),
        jti: describe(
          z.string(),
          'The access token’s `jti`; for a refresh token, its SHA-256 (base64url).',
        ),
        act: z.optional(
          describe(
            z.strictObject({ sub: identifier }),
            'A delegated token (RFC 8693 §4.1): the agent acting; `sub` is then the user.',
          ),
        ),
        cnf: z.optional(
          describe(
            z.strictObject({ jkt: z.string() }),
            'A DPoP-bound token (RFC 9449 §6.2), or a refresh token whose family is bound (§5): the key’s thumbprint.',
          ),
        ),
      }),
    ])
    .register(z.globalRegistry, {
      id: 'IntrospectionResponse',
      description:
        'RFC 7662 §2.2. Only the authenticated client’s own active tokens are described; anything else is `{ "active": false }`.',
    }),
)
export type IntrospectionResponse = z.output<ReturnType<typeof introspectionResponse>>
