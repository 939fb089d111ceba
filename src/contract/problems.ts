// Every problem `code` the API answers with (the `type` is `/problems/<code>`): `ProblemInit`
// takes only these, so no code reaches a client uncatalogued. The OpenAPI document lists them
// once at its root (`x-problem-types`) and, per response, the codes that response can carry
// (`x-problem-codes`); the scenario tests check every problem they receive against those lists.

export interface ProblemType {
  code: string
  status: number
  description: string
  /** Also carries OAuth's `error` (= code) and `error_description` (RFC 6749 §5.2). */
  oauth?: boolean
}

export const PROBLEM_TYPES = [
  {
    code: 'validation_failed',
    status: 400,
    description: 'A body field or a path parameter is invalid; `errors` lists every one.',
  },
  { code: 'invalid_json', status: 400, description: 'The body is not valid JSON.' },
  {
    code: 'bad_request',
    status: 400,
    description: 'The request could not be read (rejected before any route ran).',
  },
  {
    code: 'invalid_request',
    status: 400,
    oauth: true,
    description:
      'Token endpoints: a parameter is missing, repeated, too long or invalid, or credentials were sent twice (body and Basic).',
  },
  {
    code: 'unsupported_grant_type',
    status: 400,
    oauth: true,
    description:
      'Token endpoint: `grant_type` is none of `client_credentials`, `refresh_token`, `urn:ietf:params:oauth:grant-type:token-exchange`.',
  },
  {
    code: 'invalid_scope',
    status: 400,
    oauth: true,
    description:
      "Token endpoint: a requested scope is not allowed for the agent or exceeds the refresh token's grant.",
  },
  {
    code: 'invalid_grant',
    status: 400,
    oauth: true,
    description:
      'Token endpoint: the refresh token is invalid, expired, revoked, already used (its whole family is then revoked, unless it was the previous token presented again within the grace period) or not issued to the authenticated client; token exchange (RFC 8693): the subject token is invalid, expired or revoked, the requested subject is unknown or not granted (one answer), or a delegated token was presented for another user.',
  },
  {
    code: 'invalid_target',
    status: 400,
    oauth: true,
    description:
      'Token endpoint (RFC 8707): `resource` names no resource of this server, or more than one.',
  },
  {
    code: 'unsupported_response_type',
    status: 400,
    oauth: true,
    description:
      'The authorization endpoint: no grant here uses it; agents use the client credentials grant.',
  },
  {
    code: 'invalid_dpop_proof',
    status: 400,
    oauth: true,
    description:
      'Token endpoint (RFC 9449): the DPoP proof is missing (the agent requires DPoP), malformed, replayed, too old, for another method or URL, or by another key than the refresh token is bound to.',
  },
  {
    code: 'use_dpop_nonce',
    status: 400,
    oauth: true,
    description:
      'Token endpoint (RFC 9449 §8): a DPoP proof must carry the nonce in the `DPoP-Nonce` header of this answer.',
  },
  {
    code: 'invalid_client',
    status: 401,
    oauth: true,
    description:
      'Token endpoints: unknown agent, wrong secret or inactive agent (one indistinguishable answer), malformed Basic credentials; a key-bound agent presenting a secret; a client assertion (RFC 7523) that is not signed by the registered key, for another audience, expired, too long-lived or replayed.',
  },
  {
    code: 'invalid_token',
    status: 401,
    description:
      'The bearer token is missing, malformed, invalid, expired or revoked (for /internal/flush: not the cron secret).',
  },
  {
    code: 'insufficient_scope',
    status: 403,
    description: 'The access token is valid but lacks the scope this route needs.',
  },
  { code: 'not_found', status: 404, description: 'No such route, user (or grant) or batch.' },
  {
    code: 'user_not_found',
    status: 404,
    description:
      'Progress: a user is unknown or not granted to the agent; `errors` names the updates. Nothing was accepted.',
  },
  { code: 'body_too_large', status: 413, description: 'The body exceeds 64 KiB.' },
  {
    code: 'unsupported_media_type',
    status: 415,
    description: 'The body is not in a media type the route accepts (`Accept-Post` lists them).',
  },
  {
    code: 'rate_limited',
    status: 429,
    description: 'A rate limit is exhausted; retry after `Retry-After` seconds.',
  },
  {
    code: 'idempotency_key_reused',
    status: 422,
    description:
      'Progress: an idempotency key was already accepted for a different update (draft-ietf-httpapi-idempotency-key-header); `errors` names it. Nothing was accepted.',
  },
  {
    code: 'update_refused',
    status: 422,
    description:
      'Progress, without the Redis buffer: the database refused an update that passed validation (a defect, logged). Nothing was accepted.',
  },
  {
    code: 'internal_error',
    status: 500,
    description: 'A bug. Never caused by input; the log line with this `request_id` says more.',
  },
  {
    code: 'configuration_error',
    status: 503,
    description:
      "The deployment's configuration fails closed (a missing, short or example secret; see the health report). On the token endpoints also OAuth `temporarily_unavailable`.",
  },
  {
    code: 'database_unavailable',
    status: 503,
    description:
      'Token endpoints: the token store (Postgres) is unavailable; also OAuth `temporarily_unavailable`. `GET /api/v1/agent/users`: the grants cannot be read.',
  },
  {
    code: 'revocation_unavailable',
    status: 503,
    description:
      'Revocation: without Redis, the answering instance holds as many agents’ revocations as it may (REVOCATION_MAX_AGENTS); nothing was revoked. Retry later.',
  },
  {
    code: 'auth_unavailable',
    status: 503,
    description:
      'Protected routes: whether the access token was revoked cannot be checked (Redis and Postgres both fail) and this instance has not checked it within REVOCATION_CHECK_TTL_MS; nothing was done. Retry after `Retry-After` seconds.',
  },
  {
    code: 'progress_unavailable',
    status: 503,
    description:
      'Progress: no durable store can take the write (the database down, and Redis down or its buffer — or the agent’s share of it — full), grants cannot be checked, or batch status is unknown; nothing was accepted.',
  },
  {
    code: 'buffer_unavailable',
    status: 503,
    description:
      'Flush: the progress buffer (Redis) is unavailable; buffered updates stay where they are until the next flush.',
  },
  {
    code: 'outcome_unknown',
    status: 503,
    description:
      'A store timed out and the write may have landed (progress: the updates; revocation: the revocation). Retry the same request (progress: with the same idempotency keys); nothing is applied twice.',
  },
  {
    code: 'origin_not_allowed',
    status: 403,
    description:
      '`/mcp`: the request carries an `Origin` other than the deployment’s own (`PUBLIC_URL`): refused before anything else, against DNS rebinding (MCP Streamable HTTP).',
  },
  {
    code: 'method_not_allowed',
    status: 405,
    description: 'The path exists, but not with this method; `Allow` lists the methods it takes.',
  },
  {
    code: 'revocation_partial',
    status: 503,
    description:
      'Revocation: the shared revocation store (Redis) failed, so the token is revoked on the instance that answered only (a refresh token and its family are revoked in Postgres all the same). Retry to revoke it everywhere.',
  },
] as const satisfies readonly ProblemType[]

export type ProblemCode = (typeof PROBLEM_TYPES)[number]['code']
