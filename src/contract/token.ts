// POST /api/v1/agent/token and /token/revoke (CONTRACT.md "Access tokens", RFC 6749, RFC 7009).
import * as z from 'zod/mini'
import { boundedString, identifier } from './common.ts'

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

/** JSON form 1: `{ agent_id, agent_secret, scope? }` (grant_type optional). */
export const jsonClientCredentials = z.strictObject({
  grant_type: z.optional(z.literal('client_credentials')),
  agent_id: identifier,
  agent_secret: secret,
  scope: z.optional(scopeString),
})

/**
 * JSON refresh: `{ grant_type: "refresh_token", refresh_token, scope? }`, with the client's
 * credentials in `agent_id`/`agent_secret` or by HTTP Basic (RFC 6749 §6: it must authenticate).
 */
export const jsonRefresh = z.strictObject({
  grant_type: z.literal('refresh_token'),
  refresh_token: refreshToken,
  scope: z.optional(scopeString),
  agent_id: z.optional(identifier),
  agent_secret: z.optional(secret),
})

export type TokenRequest = z.input<typeof jsonClientCredentials> | z.input<typeof jsonRefresh>

export interface TokenResponse {
  access_token: string
  token_type: 'Bearer'
  expires_in: number
  /** RFC 3339 instant the access token expires. */
  expires_at: string
  refresh_token: string
  refresh_expires_in: number
  scope: string
  environment: 'development' | 'staging' | 'production'
}

/** RFC 7009 revocation request (JSON form; the form encoding carries the same fields). */
export const jsonRevoke = z.strictObject({
  token: boundedString(1, 8192),
  token_type_hint: z.optional(z.enum(['access_token', 'refresh_token'])),
  agent_id: z.optional(identifier),
  agent_secret: z.optional(secret),
})

export type RevokeRequest = z.input<typeof jsonRevoke>

/** Form fields of the token endpoints, composed of the very leaves the JSON schemas use. */
export const tokenForm = z.object({
  grant_type: z.enum(['client_credentials', 'refresh_token']),
  client_id: z.optional(jsonClientCredentials.shape.agent_id),
  client_secret: z.optional(jsonClientCredentials.shape.agent_secret),
  refresh_token: z.optional(jsonRefresh.shape.refresh_token),
  scope: jsonClientCredentials.shape.scope,
})

export const revokeForm = z.object({
  token: jsonRevoke.shape.token,
  token_type_hint: z.optional(boundedString(0, 64)),
  client_id: jsonRevoke.shape.agent_id,
  client_secret: jsonRevoke.shape.agent_secret,
})

/** OAuth error codes the token endpoints answer with (inside problem+json). */
export type OAuthError =
  | 'invalid_request'
  | 'invalid_client'
  | 'invalid_grant'
  | 'unsupported_grant_type'
  | 'invalid_scope'
