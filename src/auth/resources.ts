// The deployment's OAuth identity, derived from one origin (PUBLIC_URL): the issuer (RFC 8414),
// the resources a token can be for (RFC 8707) — the REST API, whose identifier is the issuer
// itself, and the MCP endpoint — and where each resource's metadata lives (RFC 9728).

export interface Issuer {
  /** The authorization server's issuer identifier: the public origin, no trailing slash. */
  issuer: string
  /** The REST API's resource identifier (the default `aud`). */
  api: string
  /** The MCP endpoint's resource identifier. */
  mcp: string
  /** Every resource a token may be requested for, the default first. */
  resources: readonly string[]
}

/** The routes' resources by name: the audience check of a route takes one of these. */
export type ResourceName = 'api' | 'mcp'

export const MCP_PATH = '/mcp'

/** The identity of the deployment at `origin` (an origin as PUBLIC_URL holds it). */
export function issuerOf(origin: string): Issuer {
  const api = origin
  const mcp = `${origin}${MCP_PATH}`
  return { issuer: origin, api, mcp, resources: [api, mcp] }
}

export const PROTECTED_RESOURCE_METADATA = '/.well-known/oauth-protected-resource'
export const AUTHORIZATION_SERVER_METADATA = '/.well-known/oauth-authorization-server'
export const JWKS_PATH = '/.well-known/jwks.json'

/**
 * Where a resource's metadata is published (RFC 9728 §3.1): the well-known path inserted
 * between the resource's host and its path, e.g. `https://h/mcp` →
 * `https://h/.well-known/oauth-protected-resource/mcp`.
 */
export function protectedResourceMetadataUrl(resource: string): string {
  const url = new URL(resource)
  const path = url.pathname === '/' ? '' : url.pathname
  return `${url.origin}${PROTECTED_RESOURCE_METADATA}${path}`
}
