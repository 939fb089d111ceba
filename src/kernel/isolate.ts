// The isolate serving requests: which entry runs it, and a short id naming it in logs and
// health reports.

/** Which entry serves this isolate; it decides which headers can be trusted. */
export type PlatformName = 'workers' | 'vercel' | 'node'

export interface Isolate {
  id: string
  /** When it was built (ms since the epoch). */
  startedAt: number
}

/** A short random id (12 hex digits). */
export function newIsolateId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(6))
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
}
