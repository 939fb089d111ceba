// Per-request timings, reported as Server-Timing (`total`, plus `db`, `redis`, `cache` where
// they were used). A span adds up every call of its kind within the request.

export type SpanName = 'db' | 'redis' | 'cache' | 'auth'

export class Trace {
  readonly #spans = new Map<SpanName, { ms: number; count: number }>()

  add(name: SpanName, ms: number): void {
    const span = this.#spans.get(name)
    if (span) {
      span.ms += ms
      span.count++
    } else {
      this.#spans.set(name, { ms, count: 1 })
    }
  }

  serverTiming(totalMs: number): string {
    const parts = [`total;dur=${totalMs.toFixed(1)}`]
    for (const [name, { ms, count }] of this.#spans) {
      parts.push(`${name};dur=${ms.toFixed(1)};desc="${count} call${count === 1 ? '' : 's'}"`)
    }
    return parts.join(', ')
  }
}
