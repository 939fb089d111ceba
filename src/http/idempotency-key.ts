// The Idempotency-Key request header (draft-ietf-httpapi-idempotency-key-header §2): a
// Structured Field String (RFC 8941 §3.3.3), `Idempotency-Key: "8e03978e-…"`. Clients that
// follow the draft send the quotes; earlier clients of this API send the bare key. Both are the
// same key.
import { problems } from '../contract/problem.ts'

/**
 * The key a header value carries: a quoted sf-string unwrapped (`\"` and `\\` unescaped), any
 * other value as it is; undefined when absent. Throws a 400 ProblemError (`validation_failed`,
 * path `Idempotency-Key`) for a quoted value that is no valid sf-string.
 */
export function idempotencyKeyFrom(header: string | undefined): string | undefined {
  if (header === undefined || !header.startsWith('"')) return header
  // RFC 8941 §3.3.3: DQUOTE *( unescaped / "\" ( DQUOTE / "\" ) ) DQUOTE, printable ASCII.
  const match = /^"((?:[\x20\x21\x23-\x5B\x5D-\x7E]|\\["\\])*)"$/.exec(header)
  if (!match) {
    throw problems.validation([
      { path: 'Idempotency-Key', message: 'A quoted key must be a Structured Field String' },
    ])
  }
  return match[1]!.replace(/\\(["\\])/g, '$1')
}
