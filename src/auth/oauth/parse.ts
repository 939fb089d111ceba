// The token endpoints' requests, read by OAuth's transport rules, which a schema validator
// alone cannot express: form-urlencoded bodies whose empty parameters count as omitted and
// whose parameters may not repeat (RFC 6749 §3.1, §3.2), HTTP Basic client credentials that
// are form-urlencoded before base64 (§2.3.1), credentials sent once (body or Basic), the
// contract's JSON equivalents. The values are held to the same zod schemas as the JSON bodies.
//
// One function per endpoint, free of Hono: headers and a body reader in, the request as data
// (or the OAuth error to answer) out.
import { decodeJwt } from 'jose'
import * as z from 'zod/mini'
import { fieldErrors } from '../../contract/field-errors.ts'
import { type FieldError, ProblemError, problems } from '../../contract/problem.ts'
import {
  introspectForm,
  JWT_BEARER_ASSERTION,
  jsonClientCredentials,
  jsonIntrospect,
  jsonRefresh,
  jsonRevoke,
  jsonTokenExchange,
  revokeForm,
  TOKEN_EXCHANGE_GRANT,
  tokenForm,
} from '../../contract/token.ts'
import { oauthError } from './errors.ts'

const FORM = 'application/x-www-form-urlencoded'
const JSON_TYPE = 'application/json'
const JSON_MEDIA_TYPE = /^application\/([\w.-]+\+)?json$/i

/**
 * How the client authenticated: its id with a secret, or (RFC 7523 `private_key_jwt`) with an
 * assertion signed by its registered key — never both.
 */
export type Credentials =
  | { agentId: string; secret: string; assertion?: undefined }
  | { agentId: string; assertion: string; secret?: undefined }

/**
 * A token request. `resource` (RFC 8707) and `audience` (RFC 8693 §2.1, on every grant): the
 * target the access token is asked for, when the request names one.
 */
export type TokenRequest =
  | {
      grant: 'client_credentials'
      credentials: Credentials
      scope?: string
      resource?: string
      audience?: string
    }
  | {
      grant: 'refresh_token'
      refreshToken: string
      scope?: string
      resource?: string
      audience?: string
      credentials?: Credentials
    }
  | {
      /** RFC 8693: the agent's access token (`actor_token` if sent, else `subject_token`). */
      grant: 'token_exchange'
      subjectToken: string
      actorToken?: string
      requestedSubject: string
      scope?: string
      resource?: string
      audience?: string
      credentials?: Credentials
    }

/** RFC 7009 and RFC 7662 requests: a token, and the client's credentials if it sent them. */
export interface RevokeRequest {
  token: string
  credentials?: Credentials
}

export type IntrospectRequest = RevokeRequest

/** What the parsers read: two headers, and the body (read only when its type is one we take). */
export interface OAuthInput {
  contentType: string | undefined
  authorization: string | undefined
  body: () => Promise<string>
}

/** The request, or the error to answer it with (and the client it named, for the budget). */
export type Parsed<R> = { request: R } | { error: ProblemError }

const mediaType = (header: string | undefined) => (header ?? '').split(';')[0]!.trim().toLowerCase()

const basicAgentId = jsonClientCredentials.shape.agent_id
const basicSecret = jsonClientCredentials.shape.agent_secret

/**
 * HTTP Basic client credentials (RFC 6749 §2.3.1: both parts form-urlencoded), the scheme name
 * in any case. Undecodable credentials are `invalid_client`; decodable ones that no store
 * could hold (a NUL, an unpaired surrogate, too long) are `invalid_request`, as in a body.
 */
export function basicCredentials(header: string | undefined): Credentials | undefined {
  const match = header && /^Basic +([A-Za-z0-9+/=]+) *$/i.exec(header)
  if (!match?.[1]) {
    if (header && /^Basic(\s|$)/i.test(header)) {
      throw oauthError('invalid_client', 'Malformed Basic credentials')
    }
    return undefined
  }
  let decoded: string
  try {
    decoded = new TextDecoder('utf-8', { fatal: true }).decode(
      Uint8Array.from(atob(match[1]), (ch) => ch.charCodeAt(0)),
    )
  } catch {
    throw oauthError('invalid_client', 'Malformed Basic credentials')
  }
  const colon = decoded.indexOf(':')
  if (colon < 1) throw oauthError('invalid_client', 'Malformed Basic credentials')
  const decode = (part: string) => {
    try {
      return decodeURIComponent(part.replaceAll('+', ' '))
    } catch {
      throw oauthError('invalid_client', 'Malformed Basic credentials')
    }
  }
  const agentId = decode(decoded.slice(0, colon))
  const secret = decode(decoded.slice(colon + 1))
  const errors: FieldError[] = []
  for (const [path, schema, value] of [
    ['Authorization.client_id', basicAgentId, agentId],
    ['Authorization.client_secret', basicSecret, secret],
  ] as const) {
    const result = schema.safeParse(value)
    if (!result.success) {
      errors.push(...fieldErrors(result.error.issues).map((e) => ({ ...e, path })))
    }
  }
  if (errors.length)
    throw oauthError('invalid_request', 'The Basic credentials are not valid', errors)
  return { agentId, secret }
}

/**
 * Form fields, refusing repeated parameters (RFC 6749 §3.2) and over-long values. A parameter
 * sent with an empty value is treated as omitted (RFC 6749 §3.1, §3.2).
 */
export function formFields(text: string): Record<string, string> {
  // No prototype: `toString=1` is a parameter like any other, not one "already there".
  const fields: Record<string, string> = Object.create(null)
  for (const [key, value] of new URLSearchParams(text)) {
    if (value === '') continue
    // RFC 8707 lets `resource` repeat, RFC 8693 `audience`; a token here has one audience,
    // so the request names one target (RFC 8693 §2.2.2: otherwise `invalid_target`).
    if ((key === 'resource' || key === 'audience') && Object.hasOwn(fields, key)) {
      throw oauthError('invalid_target', `Ask for one ${key} per token request`)
    }
    if (Object.hasOwn(fields, key)) {
      throw oauthError('invalid_request', `${parameterName(key)} is repeated`)
    }
    if (value.length > 8192)
      throw oauthError('invalid_request', `${parameterName(key)} is too long`)
    fields[key] = value
  }
  return fields
}

/** A parameter named in an answer only when its name has OAuth's shape: not request data. */
function parameterName(key: string): string {
  return /^[a-z_]{1,40}$/.test(key) ? `Parameter ${key}` : 'A parameter'
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    throw problems.invalidJson()
  }
}

/** What a required parameter is for, where its name alone does not say (not OAuth's own). */
const REQUIRED_FOR: Record<string, string> = {
  requested_subject: 'requested_subject (the user the token is to act for)',
}

/**
 * `value` held to `schema`; else `invalid_request` with each field's error. The description
 * names the required parameters that are missing (schema names, never request data), so a
 * client learns what to add without reading `errors`.
 */
function validated<S extends z.ZodMiniType>(schema: S, value: unknown): z.output<S> {
  const result = schema.safeParse(value)
  if (!result.success) {
    const sent = value !== null && typeof value === 'object' ? value : {}
    const missing = result.error.issues
      .map((issue) => (issue.path.length === 1 ? issue.path[0] : undefined))
      .filter((name): name is string => typeof name === 'string' && !Object.hasOwn(sent, name))
      .map((name) => REQUIRED_FOR[name] ?? name)
    throw oauthError(
      'invalid_request',
      missing.length ? `Missing ${missing.join(', ')}` : 'The request body is not valid',
      fieldErrors(result.error.issues),
    )
  }
  return result.data
}

const TOKEN_FORM_FIELDS = z.omit(tokenForm, { grant_type: true })

/**
 * Credentials from the body and from Basic: one method, never two (RFC 6749 §2.3.1). Beside
 * Basic, a body `client_id` alone is no second method, only the client naming itself, which
 * any client may do (§3.2.1): it must name the client Basic authenticates.
 */
function oneOf(inBody: Credentials | undefined, basic: Credentials | undefined) {
  if (inBody && basic) {
    const namesOnly = inBody.secret === '' && inBody.assertion === undefined
    if (!namesOnly) {
      throw oauthError('invalid_request', 'Send credentials once: in the body or by Basic')
    }
    if (inBody.agentId !== basic.agentId) {
      throw oauthError('invalid_request', 'client_id names another client than Basic')
    }
  }
  return basic ?? inBody
}

function bodyCredentials(
  id: string | undefined,
  secret: string | undefined,
  assertion?: { type?: string; jwt?: string },
): Credentials | undefined {
  if (assertion?.type !== undefined || assertion?.jwt !== undefined) {
    if (secret !== undefined) {
      throw oauthError('invalid_request', 'Use one client authentication method')
    }
    return assertionCredentials(id, assertion.type, assertion.jwt)
  }
  return id !== undefined || secret !== undefined
    ? { agentId: id ?? '', secret: secret ?? '' }
    : undefined
}

/**
 * RFC 7523 §2.2: `client_assertion_type` and `client_assertion` together; the client is the
 * assertion's `sub` (RFC 7523 §3 B), which `client_id`, when sent, must equal. Only read here,
 * never trusted: the signature is checked when the client authenticates.
 */
export function assertionCredentials(
  clientId: string | undefined,
  type: string | undefined,
  jwt: string | undefined,
): Credentials {
  if (type !== JWT_BEARER_ASSERTION || !jwt) {
    throw oauthError(
      'invalid_request',
      `client_assertion and client_assertion_type=${JWT_BEARER_ASSERTION} go together`,
    )
  }
  let sub: unknown
  try {
    sub = decodeJwt(jwt).sub
  } catch {
    throw oauthError('invalid_client', 'The client assertion is not a JWT')
  }
  const parsedSub = basicAgentId.safeParse(sub)
  if (!parsedSub.success) throw oauthError('invalid_client', 'The client assertion names no client')
  if (clientId !== undefined && clientId !== parsedSub.data) {
    throw oauthError('invalid_client', 'client_id is not the client assertion’s subject')
  }
  return { agentId: parsedSub.data, assertion: jwt }
}

const assertionOf = (fields: Record<string, string | undefined>) => ({
  type: fields.client_assertion_type,
  jwt: fields.client_assertion,
})

async function parsed<R>(read: () => Promise<R>): Promise<Parsed<R>> {
  try {
    return { request: await read() }
  } catch (err) {
    if (err instanceof ProblemError) return { error: err }
    throw err
  }
}

const UNSUPPORTED_GRANT = `Use client_credentials, refresh_token or ${TOKEN_EXCHANGE_GRANT}`

function pick(fields: Record<string, string>, names: readonly string[]): Record<string, string> {
  const picked: Record<string, string> = {}
  for (const name of names) if (fields[name] !== undefined) picked[name] = fields[name]
  return picked
}

/** POST /api/v1/agent/token: client credentials or a refresh, JSON or form (RFC 6749 §4.4, §6). */
export function parseTokenRequest(input: OAuthInput): Promise<Parsed<TokenRequest>> {
  return parsed(async (): Promise<TokenRequest> => {
    const type = mediaType(input.contentType)
    const basic = basicCredentials(input.authorization)

    if (JSON_MEDIA_TYPE.test(type)) {
      const body = parseJson(await input.body())
      if (body === null || typeof body !== 'object' || Array.isArray(body)) {
        throw oauthError('invalid_request', 'The body must be a JSON object')
      }
      const grantType = (body as { grant_type?: unknown }).grant_type
      if (grantType === 'refresh_token') {
        const req = validated(jsonRefresh, body)
        return {
          grant: 'refresh_token',
          refreshToken: req.refresh_token,
          scope: req.scope,
          resource: req.resource,
          audience: req.audience,
          credentials: oneOf(bodyCredentials(req.agent_id, req.agent_secret), basic),
        }
      }
      if (grantType === TOKEN_EXCHANGE_GRANT) {
        const req = validated(jsonTokenExchange, body)
        return {
          grant: 'token_exchange',
          subjectToken: req.subject_token,
          actorToken: req.actor_token,
          requestedSubject: req.requested_subject,
          scope: req.scope,
          resource: req.resource,
          audience: req.audience,
          credentials: basic,
        }
      }
      if (grantType !== undefined && grantType !== 'client_credentials') {
        throw oauthError('unsupported_grant_type', UNSUPPORTED_GRANT)
      }
      if (basic)
        throw oauthError('invalid_request', 'Send credentials once: in the body or by Basic')
      const req = validated(jsonClientCredentials, body)
      return {
        grant: 'client_credentials',
        credentials: { agentId: req.agent_id, secret: req.agent_secret },
        scope: req.scope,
        resource: req.resource,
        audience: req.audience,
      }
    }

    if (type === FORM) {
      const fields = formFields(await input.body())
      // Held to the JSON body's schemas; grant_type is checked below, in OAuth's order.
      validated(TOKEN_FORM_FIELDS, fields)
      const { scope, resource, audience } = fields
      const credentials = oneOf(
        bodyCredentials(fields.client_id, fields.client_secret, assertionOf(fields)),
        basic,
      )
      switch (fields.grant_type) {
        case undefined:
          throw oauthError('invalid_request', 'grant_type is required', [
            { path: 'grant_type', message: 'Required' },
          ])
        case 'client_credentials':
          if (!credentials?.agentId || !(credentials.secret || credentials.assertion)) {
            throw oauthError('invalid_client', 'Client credentials are required')
          }
          return { grant: 'client_credentials', credentials, scope, resource, audience }
        case 'refresh_token':
          if (!fields.refresh_token) {
            throw oauthError('invalid_request', 'refresh_token is required', [
              { path: 'refresh_token', message: 'Required' },
            ])
          }
          return {
            grant: 'refresh_token',
            refreshToken: fields.refresh_token,
            scope,
            resource,
            audience,
            credentials,
          }
        case TOKEN_EXCHANGE_GRANT: {
          const exchange = validated(jsonTokenExchange, {
            ...pick(fields, [
              'grant_type',
              'subject_token',
              'subject_token_type',
              'actor_token',
              'actor_token_type',
              'requested_subject',
              'requested_token_type',
              'scope',
              'resource',
              'audience',
            ]),
          })
          return {
            grant: 'token_exchange',
            subjectToken: exchange.subject_token,
            actorToken: exchange.actor_token,
            requestedSubject: exchange.requested_subject,
            scope,
            resource,
            audience: exchange.audience,
            credentials,
          }
        }
        default:
          throw oauthError('unsupported_grant_type', UNSUPPORTED_GRANT)
      }
    }

    throw problems.unsupportedMediaType([JSON_TYPE, FORM])
  })
}

/** A token to revoke or introspect, JSON or form; `token_type_hint` read but only a hint. */
function tokenRequest(
  input: OAuthInput,
  schemas: { json: typeof jsonRevoke | typeof jsonIntrospect; form: typeof revokeForm },
): Promise<Parsed<RevokeRequest>> {
  return parsed(async (): Promise<RevokeRequest> => {
    const type = mediaType(input.contentType)
    const basic = basicCredentials(input.authorization)
    let fields: {
      token: string
      agentId?: string
      secret?: string
      assertion?: { type?: string; jwt?: string }
    }
    if (JSON_MEDIA_TYPE.test(type)) {
      const req = validated(schemas.json, parseJson(await input.body()))
      fields = { token: req.token, agentId: req.agent_id, secret: req.agent_secret }
    } else if (type === FORM) {
      const req = validated(schemas.form, formFields(await input.body()))
      fields = {
        token: req.token,
        agentId: req.client_id,
        secret: req.client_secret,
        assertion: assertionOf(req),
      }
    } else {
      throw problems.unsupportedMediaType([JSON_TYPE, FORM])
    }
    // token_type_hint is only a hint: every type is searched (RFC 7009 §2.1, RFC 7662 §2.1),
    // and the token's own shape says which it can be.
    return {
      token: fields.token,
      credentials: oneOf(bodyCredentials(fields.agentId, fields.secret, fields.assertion), basic),
    }
  })
}

/** POST /api/v1/agent/token/revoke (RFC 7009 §2.1), JSON or form. */
export function parseRevokeRequest(input: OAuthInput): Promise<Parsed<RevokeRequest>> {
  return tokenRequest(input, { json: jsonRevoke, form: revokeForm })
}

/** POST /api/v1/agent/token/introspect (RFC 7662 §2.1), JSON or form. */
export function parseIntrospectRequest(input: OAuthInput): Promise<Parsed<IntrospectRequest>> {
  return tokenRequest(input, { json: jsonIntrospect, form: introspectForm })
}
