// Structured JSON logs, one object per line. Fields are data, never interpolated strings,
// and a last line of defence masks anything that looks like a credential: keys that name one
// and values shaped like JWTs, bearer tokens or connection strings with passwords.
import type { LogLevel } from './config/tunables.ts'

export type LogFields = Record<string, unknown>
export type LogSink = (line: string) => void

export interface Logger {
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
  if (value instanceof Error) {
    return { name: value.name, message: redactString(value.message) }
  }
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
  const threshold = RANK[options.level]
  const make = (base: LogFields): Logger => {
    const write = (level: LogLevel, msg: string, fields?: LogFields) => {
      if (RANK[level] < threshold) return
      const record = redact({ ...base, ...fields }) as LogFields
      sink(JSON.stringify({ level, msg, time: new Date().toISOString(), ...record }))
    }
    return {
      debug: (msg, fields) => write('debug', msg, fields),
      info: (msg, fields) => write('info', msg, fields),
      warn: (msg, fields) => write('warn', msg, fields),
      error: (msg, fields) => write('error', msg, fields),
      child: (fields) => make({ ...base, ...fields }),
    }
  }
  return make(options.base ?? {})
}
