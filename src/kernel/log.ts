// Structured JSON logs, one object per line. Fields are data, never interpolated strings,
// and a last line of defence masks anything that looks like a credential: keys that name one
// and values shaped like JWTs, bearer tokens or connection strings with passwords.
//
// Errors are logged by name and code only, never by message: an upstream's message carries the
// request it failed on (Upstash appends "command was: [...]" with every argument; Postgres
// quotes the offending value), and that is request data — personal data, even.

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

export type LogFields = Record<string, unknown>
export type LogSink = (line: string) => void

export interface Logger {
  /** Whether a line at `level` would be written (to skip building fields that would not). */
  enabled(level: LogLevel): boolean
  debug(msg: string, fields?: LogFields): void
  info(msg: string, fields?: LogFields): void
  warn(msg: string, fields?: LogFields): void
  error(msg: string, fields?: LogFields): void
  child(fields: LogFields): Logger
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 }

const SENSITIVE_KEY =
  /secret|password|passwd|authorization|cookie|token(?!_type)|credential|api[-_]?key|connection[-_]?string|database[-_]?url/i
const JWT = /\beyJ[\w-]{5,}\.[\w-]{5,}\.[\w-]*/g
const BEARER = /\b(Bearer|Basic)\s+[\w.~+/=-]+/gi
const URL_PASSWORD = /(\b[a-z][\w+.-]*:\/\/[^:/\s@]+:)[^@\s]+@/gi

export function redactString(value: string): string {
  return value
    .replace(JWT, '[redacted-jwt]')
    .replace(BEARER, '$1 [redacted]')
    .replace(URL_PASSWORD, '$1[redacted]@')
}

export function redact(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redactString(value)
  if (value === null || typeof value !== 'object' || depth > 6) return value
  if (value instanceof Error) return describeError(value)
  if (Array.isArray(value)) return value.map((item) => redact(item, depth + 1))
  const out: Record<string, unknown> = {}
  for (const [key, item] of Object.entries(value)) {
    out[key] = SENSITIVE_KEY.test(key) ? '[redacted]' : redact(item, depth + 1)
  }
  return out
}

export function createLogger(options: {
  level: LogLevel
  sink?: LogSink
  base?: LogFields
}): Logger {
  const sink = options.sink ?? ((line: string) => console.log(line))
  return new StructuredLogger(sink, RANK[options.level], options.base ?? {})
}

// A class, not closures: every request makes a child (its request id bound), so a child
// must cost one small object; its fields are merged only when a line is really written.
class StructuredLogger implements Logger {
  readonly #sink: LogSink
  readonly #threshold: number
  readonly #base: LogFields
  /** A child's own fields (its parent's `#base` is shared, not copied). */
  readonly #own: LogFields | undefined

  constructor(sink: LogSink, threshold: number, base: LogFields, own?: LogFields) {
    this.#sink = sink
    this.#threshold = threshold
    this.#base = base
    this.#own = own
  }

  enabled(level: LogLevel): boolean {
    return RANK[level] >= this.#threshold
  }

  debug(msg: string, fields?: LogFields): void {
    this.#write('debug', msg, fields)
  }

  info(msg: string, fields?: LogFields): void {
    this.#write('info', msg, fields)
  }

  warn(msg: string, fields?: LogFields): void {
    this.#write('warn', msg, fields)
  }

  error(msg: string, fields?: LogFields): void {
    this.#write('error', msg, fields)
  }

  child(fields: LogFields): Logger {
    const own = this.#own ? { ...this.#own, ...fields } : fields
    return new StructuredLogger(this.#sink, this.#threshold, this.#base, own)
  }

  #write(level: LogLevel, msg: string, fields?: LogFields): void {
    if (RANK[level] < this.#threshold) return
    const record = redact({ ...this.#base, ...this.#own, ...fields }) as LogFields
    this.#sink(JSON.stringify({ level, msg, time: new Date().toISOString(), ...record }))
  }
}

const CODE = /^[A-Za-z0-9_]{1,32}$/
/** The leading word of a Redis reply error ("ERR", "WRONGTYPE", "NOSCRIPT"), as Upstash relays it. */
const REDIS_PREFIX = /^(?:Command failed: )?([A-Z][A-Z_]{1,31})\b/
/** The status the Neon driver puts in its message for an HTTP-level failure. */
const HTTP_STATUS = /\bHTTP status (\d{3})\b/

/**
 * What a log line may say about an error: its name, and a code where the error carries one —
 * a SQLSTATE (`23505`), a system error code (`ECONNREFUSED`), the Redis reply's leading word
 * (`ERR`, `WRONGTYPE`), an HTTP status — plus the same for its `cause`. Never the message: it
 * may quote the request (see the top of this file). The stack's frames name code, not data,
 * but they are left out too: the error's name and the log line's `msg` locate a failure.
 */
export function describeError(err: Error, depth = 0): LogFields {
  const out: LogFields = { name: err.name }
  const { code, status, cause } = err as Error & {
    code?: unknown
    status?: unknown
    cause?: unknown
  }
  if (typeof code === 'string' && CODE.test(code)) out.code = code
  else if (typeof code === 'number' && Number.isInteger(code)) out.code = code
  if (typeof status === 'number' && Number.isInteger(status)) out.status = status
  if (out.code === undefined && err.name === 'UpstashError') {
    const prefix = REDIS_PREFIX.exec(err.message)?.[1]
    if (prefix) out.code = prefix
  }
  if (out.status === undefined && err.name === 'NeonDbError') {
    const http = HTTP_STATUS.exec(err.message)?.[1]
    if (http) out.status = Number(http)
  }
  if (cause instanceof Error && depth < 2) out.cause = describeError(cause, depth + 1)
  return out
}
