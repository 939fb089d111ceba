// The token endpoints, spoken as RFC 6749 / RFC 7009 clients do: form bodies and HTTP Basic
// client authentication, so credentials never travel in a JSON body that might get logged.
// Where they are comes from the server's RFC 8414 metadata, read once and only trusted when its
// issuer is the base URL's origin and every endpoint lies there (credentials never go to a
// host the metadata names elsewhere); a server without metadata gets the contract's paths.
import { basicAuthorization } from './encoding.ts'
import { AgentApiError, errorFromResponse } from './errors.ts'
import { type HttpRuntime, type Outcome, type RetryPolicy, send } from './http.ts'
import { clientAssertion, type DpopProver } from './proofs.ts'

export type Grant = { type: 'client_credentials' } | { type: 'refresh_token'; refreshToken: string }

/** What a token response gives the SDK: a token exchange's has no refresh token. */
export interface IssuedTokens {
  access_token: string
  expires_in: number
  token_type?: string
  refresh_token?: string
  refresh_expires_in?: number
}

export interface OAuthClient {
  /** Shared by concurrent callers, so it takes no caller's AbortSignal. */
  requestToken(grant: Grant): Promise<IssuedTokens>
  /**
   * RFC 8693: the agent's access token `subjectToken` for one that acts for `userId` (the
   * agent must hold a grant for the user), with at most `scope`.
   */
  exchange(subjectToken: string, userId: string, scope?: string): Promise<IssuedTokens>
  /** RFC 7009: `token` is a refresh token or an access token's `jti`. */
  revoke(token: string, hint: 'refresh_token' | 'access_token'): Promise<void>
}

export interface OAuthClientOptions {
  baseUrl: string
  agentId: string
  /** The agent's secret (HTTP Basic); or, for a key-bound agent, `privateKey`. */
  agentSecret?: string | undefined
  /** RFC 7523 private_key_jwt: the private half of the key the agent registered. */
  privateKey?: CryptoKey | undefined
  /** RFC 9449: proofs for the token endpoint, so every token is bound to the DPoP key. */
  dpop?: DpopProver | undefined
  scope?: string | undefined
  runtime: HttpRuntime
  policy: RetryPolicy
}

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange'
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token'
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'

export const TOKEN_PATH = '/api/v1/agent/token'
export const REVOKE_PATH = '/api/v1/agent/token/revoke'
export const METADATA_PATH = '/.well-known/oauth-authorization-server'

/** The endpoints the SDK uses, as absolute URLs. */
export interface Endpoints {
  token: string
  revocation: string
}

/**
 * A refresh token is spent the moment the server processes it, and re-using a spent one revokes
 * its whole family. So a refresh is retried only when the server said it did nothing (429, 503);
 * after a network error or another 5xx its fate is unknown and the caller must not resend it.
 */
export function refreshRetryable(outcome: Outcome): boolean {
  return 'response' in outcome && [429, 503].includes(outcome.response.status)
}

/**
 * The endpoints from the server's metadata (RFC 8414), or the contract's paths when it has none
 * (404), or when the API is served under a path prefix (its issuer is an origin, so no metadata
 * can describe such a base URL). Throws an AgentApiError when the metadata names another
 * issuer or an endpoint on another origin, or when it cannot be read.
 */
export async function discoverEndpoints(
  baseUrl: string,
  runtime: HttpRuntime,
  policy: RetryPolicy,
  sensitive: readonly string[],
): Promise<Endpoints> {
  const origin = new URL(baseUrl).origin
  const defaults = { token: baseUrl + TOKEN_PATH, revocation: baseUrl + REVOKE_PATH }
  if (baseUrl !== origin) return defaults
  const res = await send(
    runtime,
    policy,
    () => new Request(origin + METADATA_PATH, { headers: { Accept: 'application/json' } }),
    { method: 'GET', path: METADATA_PATH, sensitive: () => sensitive },
  )
  if (res.status === 404) {
    await res.body?.cancel()
    return defaults
  }
  if (!res.ok) {
    throw await errorFromResponse(res, {
      method: 'GET',
      path: METADATA_PATH,
      now: runtime.now(),
      sensitive,
    })
  }
  const metadata = (await res.json().catch(() => undefined)) as Record<string, unknown> | undefined
  const sameOrigin = (value: unknown): value is string => {
    try {
      return typeof value === 'string' && new URL(value).origin === origin
    } catch {
      return false
    }
  }
  const token = metadata?.token_endpoint
  const revocation = metadata?.revocation_endpoint ?? defaults.revocation
  if (metadata?.issuer !== origin || !sameOrigin(token) || !sameOrigin(revocation)) {
    throw new AgentApiError({
      status: res.status,
      code: 'discovery_mismatch',
      message: `GET ${METADATA_PATH}: the metadata names another issuer or origin than ${origin}`,
    })
  }
  return { token, revocation }
}

export function createOAuthClient(options: OAuthClientOptions): OAuthClient {
  const { runtime, policy, agentSecret, privateKey, dpop } = options
  const authorization =
    agentSecret === undefined ? undefined : basicAuthorization(options.agentId, agentSecret)
  const secrets = agentSecret
    ? [agentSecret, authorization!.slice('Basic '.length)]
    : ([] as string[])
  // Read once per client; a failed read is not kept (the next token request tries again).
  let endpoints: Promise<Endpoints> | undefined
  const where = () => {
    if (!endpoints) {
      const reading = discoverEndpoints(options.baseUrl, runtime, policy, secrets)
      reading.catch(() => {
        if (endpoints === reading) endpoints = undefined
      })
      endpoints = reading
    }
    return endpoints
  }

  async function post(
    endpoint: keyof Endpoints,
    form: URLSearchParams,
    secret: string,
    retryRefresh: boolean,
  ) {
    const at = await where()
    const url = at[endpoint]
    const path = new URL(url).pathname
    const sensitive = () => [...secrets, secret]
    const once = () =>
      send(
        runtime,
        policy,
        // Made per attempt: an assertion and a DPoP proof are used once, so a retry signs anew.
        async () => {
          const body = new URLSearchParams(form)
          const headers: Record<string, string> = {
            'Content-Type': 'application/x-www-form-urlencoded',
            Accept: 'application/json',
          }
          if (authorization) headers.Authorization = authorization
          if (privateKey) {
            body.set('client_id', options.agentId)
            body.set('client_assertion_type', JWT_BEARER)
            body.set(
              'client_assertion',
              await clientAssertion(privateKey, options.agentId, at.token, runtime.now()),
            )
          }
          if (dpop && endpoint === 'token')
            headers.DPoP = await dpop.proof('POST', url, runtime.now())
          return new Request(url, { method: 'POST', headers, body: body.toString() })
        },
        {
          method: 'POST',
          path,
          sensitive,
          ...(retryRefresh ? { retryable: refreshRetryable } : {}),
        },
      )
    let res = await once()
    if (dpop?.wantsNonce(res)) {
      // Refused before anything was spent: the proof lacked the nonce this answer gives.
      await res.body?.cancel()
      res = await once()
    }
    if (res.ok) return res
    throw await errorFromResponse(res, {
      method: 'POST',
      path,
      now: runtime.now(),
      sensitive: sensitive(),
    })
  }

  return {
    async requestToken(grant) {
      const form = new URLSearchParams({ grant_type: grant.type })
      const refreshToken = grant.type === 'refresh_token' ? grant.refreshToken : ''
      if (grant.type === 'refresh_token') form.set('refresh_token', refreshToken)
      if (options.scope && grant.type === 'client_credentials') form.set('scope', options.scope)
      return tokensFrom(await post('token', form, refreshToken, grant.type === 'refresh_token'))
    },

    async exchange(subjectToken, userId, scope) {
      const form = new URLSearchParams({
        grant_type: TOKEN_EXCHANGE,
        subject_token: subjectToken,
        subject_token_type: ACCESS_TOKEN_TYPE,
        requested_subject: userId,
      })
      if (scope) form.set('scope', scope)
      // An exchange spends nothing: retried like any request.
      return tokensFrom(await post('token', form, subjectToken, false))
    },

    async revoke(token, hint) {
      const form = new URLSearchParams({ token, token_type_hint: hint })
      const res = await post('revocation', form, token, false)
      await res.body?.cancel()
    },
  }
}

async function tokensFrom(res: Response): Promise<IssuedTokens> {
  const body: unknown = await res.json().catch(() => undefined)
  if (!isTokenResponse(body)) {
    throw new AgentApiError({
      status: res.status,
      code: 'invalid_token_response',
      message: `POST ${TOKEN_PATH}: the response is not a token response`,
      ...(res.headers.get('x-request-id') ? { requestId: res.headers.get('x-request-id')! } : {}),
    })
  }
  return body
}

function isTokenResponse(body: unknown): body is IssuedTokens {
  if (body === null || typeof body !== 'object') return false
  const { access_token, expires_in } = body as Record<string, unknown>
  return (
    typeof access_token === 'string' &&
    access_token !== '' &&
    typeof expires_in === 'number' &&
    expires_in > 0
  )
}
