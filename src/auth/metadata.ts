// The metadata this deployment publishes, built in one place: RFC 8414 for the authorization
// server and RFC 9728 for each protected resource. What later features add (token exchange,
// private_key_jwt, DPoP) goes here, and every document that names it follows.
import type {
  AuthorizationServerMetadata,
  ProtectedResourceMetadata,
} from '../contract/discovery.ts'
import { SCOPES, TOKEN_EXCHANGE_GRANT } from '../contract/token.ts'
import { CLIENT_KEY_ALGS } from './client-assertion.ts'
import { type Issuer, JWKS_PATH } from './resources.ts'

export const TOKEN_PATH = '/api/v1/agent/token'
export const REVOKE_PATH = '/api/v1/agent/token/revoke'
export const INTROSPECT_PATH = '/api/v1/agent/token/introspect'
export const AUTHORIZE_PATH = '/api/v1/agent/authorize'

/** How clients authenticate at the token, revocation and introspection endpoints. */
export const CLIENT_AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt']

export const GRANT_TYPES = ['client_credentials', 'refresh_token', TOKEN_EXCHANGE_GRANT]

/** RFC 8414 §2 for `issuer`. */
export function authorizationServerMetadata(issuer: Issuer): AuthorizationServerMetadata {
  const at = (path: string) => `${issuer.issuer}${path}`
  return {
    issuer: issuer.issuer,
    // No grant here uses it (`response_types_supported` is empty), but common clients (the MCP
    // SDK among them) require the member: the endpoint answers every request with OAuth's
    // `unsupported_response_type`.
    authorization_endpoint: at(AUTHORIZE_PATH),
    token_endpoint: at(TOKEN_PATH),
    revocation_endpoint: at(REVOKE_PATH),
    introspection_endpoint: at(INTROSPECT_PATH),
    jwks_uri: at(JWKS_PATH),
    grant_types_supported: [...GRANT_TYPES],
    response_types_supported: [],
    scopes_supported: [...SCOPES],
    token_endpoint_auth_methods_supported: [...CLIENT_AUTH_METHODS],
    revocation_endpoint_auth_methods_supported: [...CLIENT_AUTH_METHODS],
    introspection_endpoint_auth_methods_supported: [...CLIENT_AUTH_METHODS],
    // RFC 7523 private_key_jwt and RFC 9449 DPoP: the algorithms a client's key may sign with.
    token_endpoint_auth_signing_alg_values_supported: [...CLIENT_KEY_ALGS],
    revocation_endpoint_auth_signing_alg_values_supported: [...CLIENT_KEY_ALGS],
    introspection_endpoint_auth_signing_alg_values_supported: [...CLIENT_KEY_ALGS],
    dpop_signing_alg_values_supported: [...CLIENT_KEY_ALGS],
    service_documentation: at('/docs'),
  }
}

/** RFC 9728 §2 for `resource`, one of `issuer.resources`. */
export function protectedResourceMetadata(
  issuer: Issuer,
  resource: string,
): ProtectedResourceMetadata {
  return {
    resource,
    authorization_servers: [issuer.issuer],
    scopes_supported: [...SCOPES],
    bearer_methods_supported: ['header'],
    jwks_uri: `${issuer.issuer}${JWKS_PATH}`,
    dpop_signing_alg_values_supported: [...CLIENT_KEY_ALGS],
    // Opt-in per agent: Bearer tokens stay valid for agents that do not require DPoP.
    dpop_bound_access_tokens_required: false,
    resource_name: resource === issuer.mcp ? 'Agent API (MCP)' : 'Agent API',
    resource_documentation: `${issuer.issuer}/docs`,
  }
}
