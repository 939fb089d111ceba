// Standard clients we did not write (oauth4webapi, the MCP SDK), pointed at a scenario's app:
// each takes a custom fetch, so every answer they get is also contract-checked.
import * as oauth from 'oauth4webapi'
import { BASE_URL, type Scenario } from './scenario.ts'

/** oauth4webapi's and the MCP SDK's fetch, into the scenario's app. */
export const into = (sc: Scenario) => (url: string | URL | Request, init?: RequestInit) =>
  url instanceof Request
    ? sc.fetch(url.url, { ...init, method: url.method, headers: url.headers, body: init?.body })
    : sc.fetch(String(url), init)

/** oauth4webapi's request options that send into `sc`. */
export const peerOptions = (sc: Scenario) => ({ [oauth.customFetch]: into(sc) as typeof fetch })

/** RFC 8414 discovery by oauth4webapi. */
export async function discover(sc: Scenario): Promise<oauth.AuthorizationServer> {
  const issuer = new URL(BASE_URL)
  const res = await oauth.discoveryRequest(issuer, { ...peerOptions(sc), algorithm: 'oauth2' })
  return oauth.processDiscoveryResponse(issuer, res)
}

/** A fetch for the SDK, which sends whole Requests: their bodies are read and passed on. */
export async function viaRequest(
  sc: Scenario,
  input: string | URL | Request,
  init?: RequestInit,
): Promise<Response> {
  if (!(input instanceof Request)) return sc.fetch(String(input), init)
  // The bytes as they are (workerd warns on .text() of a form body).
  const body = ['GET', 'HEAD'].includes(input.method) ? undefined : await input.arrayBuffer()
  return sc.fetch(input.url, { method: input.method, headers: input.headers, body })
}
