// OAuth's transport rules, read without Hono: headers and a body in, the request or the OAuth
// error out (RFC 6749 §2.3.1, §3.1, §3.2, §4.4, §6; RFC 7009 §2.1).
import { describe, expect, test } from 'vitest'
import {
  type OAuthInput,
  type Parsed,
  parseRevokeRequest,
  parseTokenRequest,
} from '../../../src/auth/oauth/parse.ts'
import type { ProblemError } from '../../../src/contract/problem.ts'

const FORM = 'application/x-www-form-urlencoded'
const basic = (id: string, secret: string) =>
  `Basic ${btoa(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`)}`

function input(contentType: string | undefined, body: string, authorization?: string) {
  let reads = 0
  const value: OAuthInput = {
    contentType,
    authorization,
    body: async () => {
      reads++
      return body
    },
  }
  return { value, reads: () => reads }
}

function failure<R>(parsed: Parsed<R>): ProblemError['problem'] {
  if (!('error' in parsed)) throw new Error(`parsed: ${JSON.stringify(parsed.request)}`)
  return parsed.error.problem
}

describe('parseTokenRequest', () => {
  test('JSON client credentials (the contract’s form 1)', async () => {
    const { value } = input(
      'application/json; charset=utf-8',
      JSON.stringify({ agent_id: 'a', agent_secret: 's', scope: 'context:read' }),
    )
    expect(await parseTokenRequest(value)).toEqual({
      request: {
        grant: 'client_credentials',
        credentials: { agentId: 'a', secret: 's' },
        scope: 'context:read',
      },
    })
  })

  test('form client credentials by HTTP Basic, both parts form-urlencoded', async () => {
    const { value } = input(FORM, 'grant_type=client_credentials', basic('agent:1', 'p@ss w'))
    expect(await parseTokenRequest(value)).toEqual({
      request: {
        grant: 'client_credentials',
        credentials: { agentId: 'agent:1', secret: 'p@ss w' },
        scope: undefined,
      },
    })
  })

  test('an empty form parameter counts as omitted (RFC 6749 §3.2)', async () => {
    const { value } = input(
      FORM,
      'grant_type=client_credentials&client_id=a&client_secret=s&scope=',
    )
    expect(await parseTokenRequest(value)).toMatchObject({ request: { scope: undefined } })
  })

  test('a repeated parameter is invalid_request', async () => {
    const { value } = input(FORM, 'grant_type=client_credentials&client_id=a&client_id=b')
    expect(failure(await parseTokenRequest(value))).toMatchObject({
      status: 400,
      code: 'invalid_request',
      extensions: {
        error: 'invalid_request',
        error_description: 'Parameter client_id is repeated',
      },
    })
  })

  test('parameters named like Object.prototype members are unknown parameters, ignored (RFC 6749 §3.1)', async () => {
    const { value } = input(
      FORM,
      'grant_type=client_credentials&client_id=a&client_secret=s&toString=1&hasOwnProperty=2&constructor=3&__proto__=4',
    )
    expect(await parseTokenRequest(value)).toMatchObject({
      request: { grant: 'client_credentials' },
    })
  })

  test('a repeated parameter is named only when its name has OAuth shape (no request data echoed)', async () => {
    const { value } = input(
      FORM,
      'grant_type=client_credentials&client_id=a&client_secret=s&X%00y=1&X%00y=2',
    )
    expect(failure(await parseTokenRequest(value))).toMatchObject({
      code: 'invalid_request',
      extensions: { error_description: 'A parameter is repeated' },
    })
  })

  test('credentials in the body and by Basic: invalid_request', async () => {
    const { value } = input(
      FORM,
      'grant_type=client_credentials&client_id=a&client_secret=s',
      basic('a', 's'),
    )
    expect(failure(await parseTokenRequest(value)).code).toBe('invalid_request')
  })

  test('beside Basic, a body client_id alone names the client (RFC 6749 §3.2.1): the same one', async () => {
    for (const grant of [
      'grant_type=client_credentials',
      'grant_type=refresh_token&refresh_token=rt_x',
    ]) {
      const same = await parseTokenRequest(
        input(FORM, `${grant}&client_id=a`, basic('a', 's')).value,
      )
      expect(same).toMatchObject({ request: { credentials: { agentId: 'a', secret: 's' } } })
      const other = failure(
        await parseTokenRequest(input(FORM, `${grant}&client_id=b`, basic('a', 's')).value),
      )
      expect(other).toMatchObject({
        status: 400,
        code: 'invalid_request',
        extensions: { error_description: 'client_id names another client than Basic' },
      })
    }
    const revoke = await parseRevokeRequest(
      input(FORM, 'token=t&client_id=a', basic('a', 's')).value,
    )
    expect(revoke).toEqual({ request: { token: 't', credentials: { agentId: 'a', secret: 's' } } })
    // A secret or an assertion in the body beside Basic is a second method, as before.
    const assertion = failure(
      await parseTokenRequest(
        input(
          FORM,
          'grant_type=client_credentials&client_id=a&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=e30.eyJzdWIiOiJhIn0.c2ln',
          basic('a', 's'),
        ).value,
      ),
    )
    expect(assertion.code).toBe('invalid_request')
  })

  test('a missing required parameter is named in error_description (schema names only)', async () => {
    const exchange = failure(
      await parseTokenRequest(
        input(
          FORM,
          'grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token=a.b.c&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token',
        ).value,
      ),
    )
    expect(exchange).toMatchObject({
      code: 'invalid_request',
      errors: [{ path: 'requested_subject' }],
      extensions: {
        error_description: 'Missing requested_subject (the user the token is to act for)',
      },
    })
    const json = failure(
      await parseTokenRequest(
        input(
          'application/json',
          '{"grant_type":"refresh_token","agent_id":"a","agent_secret":"s"}',
        ).value,
      ),
    )
    expect(json.extensions).toMatchObject({ error_description: 'Missing refresh_token' })
    // A value sent but wrong is not "missing": the generic description, the field in errors.
    const wrong = failure(
      await parseTokenRequest(
        input('application/json', '{"agent_id":"a","agent_secret":"s","scope":7}').value,
      ),
    )
    expect(wrong).toMatchObject({
      errors: [{ path: 'scope' }],
      extensions: { error_description: 'The request body is not valid' },
    })
  })

  test('malformed Basic credentials: invalid_client with the Basic challenge', async () => {
    const { value } = input(FORM, 'grant_type=client_credentials', 'Basic !!!')
    expect(failure(await parseTokenRequest(value))).toMatchObject({
      status: 401,
      code: 'invalid_client',
      headers: { 'WWW-Authenticate': 'Basic realm="agent-api"' },
    })
  })

  test('Basic credentials no store could hold: invalid_request naming the part', async () => {
    const { value } = input(FORM, 'grant_type=client_credentials', basic('a\u0000', 's'))
    expect(failure(await parseTokenRequest(value))).toMatchObject({
      code: 'invalid_request',
      errors: [{ path: 'Authorization.client_id' }],
    })
  })

  test('grant types: missing is invalid_request, unknown is unsupported_grant_type', async () => {
    const missing = failure(await parseTokenRequest(input(FORM, 'client_id=a').value))
    expect(missing).toMatchObject({ code: 'invalid_request', errors: [{ path: 'grant_type' }] })
    const unknown = failure(await parseTokenRequest(input(FORM, 'grant_type=password').value))
    expect(unknown.code).toBe('unsupported_grant_type')
    const json = failure(
      await parseTokenRequest(input('application/json', '{"grant_type":"password"}').value),
    )
    expect(json.code).toBe('unsupported_grant_type')
  })

  test('a refresh carries the client’s credentials, from the body or Basic', async () => {
    const json = input(
      'application/json',
      JSON.stringify({ grant_type: 'refresh_token', refresh_token: 'rt_x' }),
      basic('a', 's'),
    )
    expect(await parseTokenRequest(json.value)).toEqual({
      request: {
        grant: 'refresh_token',
        refreshToken: 'rt_x',
        scope: undefined,
        credentials: { agentId: 'a', secret: 's' },
      },
    })
    const form = failure(await parseTokenRequest(input(FORM, 'grant_type=refresh_token').value))
    expect(form).toMatchObject({ code: 'invalid_request', errors: [{ path: 'refresh_token' }] })
  })

  test('unknown JSON members are refused with their path; malformed JSON is invalid_json', async () => {
    const extra = failure(
      await parseTokenRequest(
        input('application/json', '{"agent_id":"a","agent_secret":"s","x":1}').value,
      ),
    )
    expect(extra).toMatchObject({
      code: 'invalid_request',
      errors: [{ path: 'x', message: 'Unknown field' }],
    })
    const broken = failure(await parseTokenRequest(input('application/json', '{"a":').value))
    expect(broken.code).toBe('invalid_json')
  })

  test('another media type is a 415 naming both, and the body is never read', async () => {
    const { value, reads } = input('text/plain', 'agent_id=a')
    expect(failure(await parseTokenRequest(value))).toMatchObject({
      status: 415,
      headers: { 'Accept-Post': 'application/json, application/x-www-form-urlencoded' },
    })
    expect(reads()).toBe(0)
  })
})

describe('parseRevokeRequest', () => {
  test('form or JSON; the hint is read but only a hint', async () => {
    expect(
      await parseRevokeRequest(input(FORM, 'token=rt_x&token_type_hint=whatever').value),
    ).toEqual({ request: { token: 'rt_x', credentials: undefined } })
    expect(
      await parseRevokeRequest(
        input('application/json', '{"token":"t","agent_id":"a","agent_secret":"s"}').value,
      ),
    ).toEqual({ request: { token: 't', credentials: { agentId: 'a', secret: 's' } } })
  })

  test('no token is invalid_request; an unknown JSON hint is refused', async () => {
    expect(failure(await parseRevokeRequest(input(FORM, 'client_id=a').value)).code).toBe(
      'invalid_request',
    )
    const hint = failure(
      await parseRevokeRequest(
        input('application/json', '{"token":"t","token_type_hint":"id_token"}').value,
      ),
    )
    expect(hint).toMatchObject({ code: 'invalid_request', errors: [{ path: 'token_type_hint' }] })
  })
})
