// Idempotency keys: the agent's (body or Idempotency-Key header), else derived from the
// update's content, so a retried identical request is still recognised as a duplicate.
import { base64url, sha256 } from '../auth/encoding.ts'
import type { ProgressUpdate } from '../schemas/progress.ts'

/** Canonical JSON: object keys sorted at every depth, so equal content gives equal text. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value)
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`
}

export async function derivedKey(update: ProgressUpdate): Promise<string> {
  const { idempotency_key: _, ...content } = update
  // "~" cannot start a key an agent chooses by accident in practice, and marks it derived.
  return `~${base64url(await sha256(canonicalJson(content)))}`
}
