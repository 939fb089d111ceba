// OAuth's errors (RFC 6749 §5.2) as the contract's problems: the token endpoints answer every
// error with OAuth's `error` and `error_description` beside the problem members.
import {
  type FieldError,
  ProblemError,
  type ProblemInit,
  problems,
} from '../../contract/problem.ts'
import type { ProblemCode } from '../../contract/problems.ts'
import type { OAuthError } from '../../contract/token.ts'

const OAUTH_STATUS: Record<OAuthError, number> = {
  invalid_request: 400,
  invalid_client: 401,
  invalid_grant: 400,
  unsupported_grant_type: 400,
  invalid_scope: 400,
  invalid_target: 400,
  unsupported_response_type: 400,
  invalid_dpop_proof: 400,
  use_dpop_nonce: 400,
}

const OAUTH_TITLE: Record<OAuthError, string> = {
  invalid_request: 'Invalid token request',
  invalid_client: 'Client authentication failed',
  invalid_grant: 'Invalid grant',
  unsupported_grant_type: 'Unsupported grant type',
  invalid_scope: 'Invalid scope',
  invalid_target: 'Invalid resource',
  unsupported_response_type: 'Unsupported response type',
  invalid_dpop_proof: 'Invalid DPoP proof',
  use_dpop_nonce: 'DPoP nonce required',
}

/** Unknown agent, wrong secret and inactive agent: one indistinguishable answer. */
export const INVALID_CLIENT = 'Unknown agent, wrong secret, or inactive agent'

/** An OAuth error: its status, title, `error` and `error_description`. */
export function oauthError(
  error: OAuthError,
  description: string,
  errors?: FieldError[],
): ProblemError {
  return new ProblemError({
    status: OAUTH_STATUS[error],
    code: error,
    title: OAUTH_TITLE[error],
    detail: description,
    errors,
    extensions: { error, error_description: description },
    // RFC 6749 §5.2: a failed client authentication names the scheme to use.
    headers:
      error === 'invalid_client' ? { 'WWW-Authenticate': 'Basic realm="agent-api"' } : undefined,
  })
}

/** `invalid_client` where either scheme would do: both are offered (RFC 9110 allows several). */
export function noClientAuthentication(): ProblemError {
  const { problem } = oauthError(
    'invalid_client',
    'Authenticate with client credentials or an access token',
  )
  return new ProblemError({
    ...problem,
    headers: { 'WWW-Authenticate': 'Basic realm="agent-api", Bearer realm="agent-api"' },
  })
}

/** A 503 for the token endpoints, in OAuth's vocabulary as well as ours. */
export function temporarilyUnavailable(
  code: ProblemCode,
  detail: string,
  retryAfter: number,
): ProblemError {
  const p = problems.unavailable(code, detail, retryAfter).problem
  return new ProblemError({
    ...p,
    extensions: { error: 'temporarily_unavailable', error_description: detail },
  })
}

/**
 * OAuth's members for any problem of the token endpoints (RFC 6749 §5.2): a malformed body
 * or an unsupported media type is `invalid_request`, whatever our own problem code says; a
 * refused access token (revocation and introspection take one as the agent's credential) is
 * RFC 6750 §3.1's `invalid_token`, as its challenge says; a limit or an outage (429, 5xx) is
 * `temporarily_unavailable`, never the client's fault.
 */
export function withOAuthError(problem: ProblemInit): Record<string, unknown> {
  if (problem.extensions && 'error' in problem.extensions) return problem.extensions
  return {
    ...problem.extensions,
    error:
      problem.status === 429 || problem.status >= 500
        ? // "Not now" (as RFC 6749 §4.1.2.1 spells it), not "malformed": a strict client retries.
          'temporarily_unavailable'
        : problem.code === 'invalid_token'
          ? 'invalid_token'
          : 'invalid_request',
    error_description: problem.detail ?? problem.title ?? problem.code,
  }
}
