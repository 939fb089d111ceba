// Idempotency keys and fingerprints (draft-ietf-httpapi-idempotency-key-header).
//
// The key is the agent's (body or Idempotency-Key header), else derived from the update's
// content, so a retried identical request is still recognised as a duplicate. The fingerprint
// is a hash of the update's canonical content, stored with the key in both stores: the same
// key with another fingerprint is a key re-used for a different update (422), not a retry.

import { canonicalSource, sourceOf } from '../contract/json-source.ts'
import type { ProgressUpdate } from '../contract/progress.ts'
import { normaliseTimestamp } from '../contract/storable.ts'
import { base64url, sha256 } from '../kernel/bytes.ts'
import { type BufferedUpdate, eventKeyOf } from './model.ts'

/**
 * Canonical JSON: object keys sorted at every depth, so equal content gives equal text. A
 * value kept with the text it was sent as (`data`) is canonicalised from that text, as it is
 * stored: numbers past a double's precision and repeated keys then count (`canonicalSource`).
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value)
  const source = sourceOf(value)
  if (source !== undefined) return canonicalSource(source)
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

/** Marks a stored value as a fingerprint (older versions stored a batch id there). */
export const FINGERPRINT_PREFIX = 'f1:'

/**
 * The update's fingerprint: `f1:` + base64url(SHA-256(canonical JSON of every member but the
 * idempotency key, `occurred_at` normalised to UTC)). Two sends of one update always agree;
 * the order of `data`'s keys and its spacing do not matter (JSON objects are unordered, RFC
 * 8259 §4); its numbers count as written, past what a double holds, as do repeated keys:
 * `data` is stored as sent.
 */
export async function fingerprint(update: ProgressUpdate): Promise<string> {
  const { idempotency_key: _, ...content } = update
  const canonical = canonicalJson({
    ...content,
    occurred_at: normaliseTimestamp(content.occurred_at),
  })
  return `${FINGERPRINT_PREFIX}${base64url(await sha256(canonical))}`
}

/** What Postgres remembers of one key: the fingerprints accepted under it, and until when. */
export interface KnownKey {
  fingerprints: string[]
  /** When the key is forgotten (ms): its first acceptance plus the dedupe window. */
  until: number
}

/**
 * What the stores hold for `update`'s key, as the buffer's append compares it: the update's
 * own fingerprint when Postgres holds it (a duplicate), else one it holds (a re-use, or a
 * legacy 'committed'); undefined when Postgres holds nothing for the key.
 */
export function knownFingerprint(
  known: ReadonlyMap<string, KnownKey> | undefined,
  update: Pick<BufferedUpdate, 'agentId' | 'idempotencyKey' | 'fingerprint'>,
): { fingerprint: string; until: number } | undefined {
  const entry = known?.get(eventKeyOf(update))
  if (!entry) return undefined
  const fingerprint =
    entry.fingerprints.find((f) => f === update.fingerprint) ??
    entry.fingerprints.find((f) => f.startsWith(FINGERPRINT_PREFIX)) ??
    entry.fingerprints[0]!
  return { fingerprint, until: entry.until }
}
