// A local stand-in for Upstash Redis's REST API in front of a real Redis. Node-only.
//
// Speaks what `@upstash/redis` and `@upstash/ratelimit` send:
//   POST /            ["CMD", arg, …]             → { result } | 400 { error }
//   POST /pipeline    [["CMD", …], …]             → [{ result } | { error }, …]   (not atomic)
//   POST /multi-exec  [["CMD", …], …]             → [{ result } | { error }, …]   (MULTI/EXEC on a
//                                                   dedicated connection; 400 { error } if discarded)
//   GET|POST /cmd/arg/…[?k=v]                     → the REST path form (POST body = last argument)
// Auth is `Authorization: Bearer <token>` or `?_token=`; anything else gets 401 { error: "Unauthorized" }.
// With `Upstash-Encoding: base64` every string of a result is base64-encoded at every depth,
// except a top-level "OK" status, as Upstash documents. Integers are written with Redis's
// own digits. Every response carries an `upstash-sync-token` header (the client echoes it;
// one Redis behind the stand-in makes read-your-writes trivially true).
//
// Upstash accepts the script shebang flag `allow-key-locking`, stock Redis 7 rejects it
// ("Unexpected flag in script shebang"), and `@upstash/ratelimit` uses it in every script.
// The stand-in strips that flag before EVAL/SCRIPT LOAD and maps the SHA-1 of the script as
// the client sent it onto the SHA-1 Redis knows, so EVALSHA → NOSCRIPT → EVAL works as upstream.
//
// Faults: one `faults.decide()` per data request (latency, injected 503, hang), `refuse`
// through `bindRefusal`; `faults.stats.executed` counts commands that reached Redis.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { bindRefusal, FaultInjector } from './faults.ts'
import { type RespArg, RespConnection, type RespReply } from './resp.ts'

export interface UpstashRestStandinOptions {
  /** `redis://[user:password@]host[:port][/db]` of the real Redis behind the stand-in. */
  redisUrl: string
  /** Bearer token clients must present; random when omitted. */
  token?: string
  /** Port to listen on; 0 or omitted picks a free one. */
  port?: number
  /** Interface to listen on; default 127.0.0.1. */
  host?: string
  /** Share a fault injector (e.g. with a control server); a fresh one when omitted. */
  faults?: FaultInjector
  /** Largest accepted request body in bytes; default 64 MiB. */
  maxBodyBytes?: number
  /** Idle MULTI/EXEC connections kept for reuse; default 4. */
  maxIdleTransactionConnections?: number
  /**
   * Start without Redis answering (`npm run dev`): connect on the first request instead, and
   * answer as Upstash does when its database is unreachable (503, `ERR service unavailable`)
   * until Redis appears.
   */
  lazy?: boolean
}

/** One command that reached Redis, as the client sent it (before any script rewriting). */
export interface ExecutedCommand {
  argv: readonly string[]
  /** Redis's error text when the command failed, else null. */
  error: string | null
  via: 'command' | 'pipeline' | 'multi-exec'
}

export interface UpstashRestStandin {
  /** `http://host:port`, the value for `UPSTASH_REDIS_REST_URL`. */
  url: string
  token: string
  port: number
  faults: FaultInjector
  /** Observe every command executed against Redis; returns an unsubscribe function. */
  onCommand(listener: (command: ExecutedCommand) => void): () => void
  /** Stops listening, drops every connection (hung ones included) and closes Redis connections. */
  close(): Promise<void>
}

type JsonOut = string | null | { readonly int: string } | JsonOut[]

interface Prepared {
  /** What the client sent (for logs and listeners). */
  argv: readonly string[]
  /** What goes to Redis. */
  args: RespArg[]
  /** Rewrites Redis's reply for the client (script SHA mapping). */
  transform?: (reply: RespReply) => RespReply
}

class HttpError extends Error {
  readonly status: number
  constructor(status: number, message: string) {
    super(message)
    this.status = status
  }
}

/** Commands the REST API refuses: connection state, transactions outside /multi-exec, pub/sub, blocking. */
const UNAVAILABLE = new Set([
  'AUTH',
  'BLMOVE',
  'BLMPOP',
  'BLPOP',
  'BRPOP',
  'BRPOPLPUSH',
  'BZMPOP',
  'BZPOPMAX',
  'BZPOPMIN',
  'DISCARD',
  'EXEC',
  'HELLO',
  'MONITOR',
  'MULTI',
  'PSUBSCRIBE',
  'PSYNC',
  'PUNSUBSCRIBE',
  'QUIT',
  'REPLICAOF',
  'RESET',
  'SELECT',
  'SHUTDOWN',
  'SLAVEOF',
  'SSUBSCRIBE',
  'SUBSCRIBE',
  'SUNSUBSCRIBE',
  'SYNC',
  'UNSUBSCRIBE',
  'UNWATCH',
  'WAIT',
  'WAITAOF',
  'WATCH',
])

const SCRIPT_FLAG_UPSTASH_ONLY = 'allow-key-locking'

function unavailableReason(argv: readonly string[]): string | null {
  const name = (argv[0] ?? '').toUpperCase()
  const sub = (argv[1] ?? '').toUpperCase()
  if (UNAVAILABLE.has(name)) return name
  if (name === 'CLIENT' && (sub === 'REPLY' || sub === 'PAUSE')) return `${name} ${sub}`
  if (
    (name === 'XREAD' || name === 'XREADGROUP') &&
    argv.some((a) => a.toUpperCase() === 'BLOCK')
  ) {
    return `${name} BLOCK`
  }
  return null
}

function sha1(text: string | Buffer): string {
  return createHash('sha1').update(text).digest('hex')
}

/** Drop shebang flags stock Redis does not know; undefined when the script needs no change. */
export function rewriteScriptForRedis(script: string): string | undefined {
  if (!script.startsWith('#!')) return undefined
  const newline = script.indexOf('\n')
  const shebang = newline === -1 ? script : script.slice(0, newline)
  const rest = newline === -1 ? '' : script.slice(newline)
  let changed = false
  const parts = shebang.split(/\s+/).map((part) => {
    if (!part.startsWith('flags=')) return part
    const flags = part.slice('flags='.length).split(',')
    const kept = flags.filter((flag) => flag !== SCRIPT_FLAG_UPSTASH_ONLY)
    if (kept.length === flags.length) return part
    changed = true
    return kept.length > 0 ? `flags=${kept.join(',')}` : ''
  })
  if (!changed) return undefined
  return parts.filter((part) => part !== '').join(' ') + rest
}

function toArg(value: unknown): RespArg {
  if (typeof value === 'string') return value
  if (typeof value === 'number' || typeof value === 'boolean') return String(value)
  throw new HttpError(
    400,
    `ERR invalid argument ${JSON.stringify(value)}: strings, numbers or booleans only`,
  )
}

function toArgv(value: unknown): RespArg[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw new HttpError(400, 'ERR a command must be a non-empty JSON array')
  }
  return value.map(toArg)
}

function argText(arg: RespArg): string {
  return typeof arg === 'string' ? arg : arg.toString('utf8')
}

// ---- JSON output -------------------------------------------------------------------------

function toJsonOut(reply: RespReply, base64: boolean, topLevel: boolean): JsonOut {
  const text = (value: string) => (base64 ? Buffer.from(value, 'utf8').toString('base64') : value)
  switch (reply.kind) {
    case 'simple':
      return topLevel && reply.value === 'OK' ? 'OK' : text(reply.value)
    case 'error':
      return text(reply.message)
    case 'integer':
      return { int: reply.value }
    case 'bulk':
      if (reply.value === null) return null
      return base64 ? reply.value.toString('base64') : reply.value.toString('utf8')
    case 'array':
      return reply.value === null ? null : reply.value.map((item) => toJsonOut(item, base64, false))
  }
}

function stringifyOut(value: JsonOut): string {
  if (value === null) return 'null'
  if (typeof value === 'string') return JSON.stringify(value)
  if (Array.isArray(value)) return `[${value.map(stringifyOut).join(',')}]`
  return value.int
}

function itemJson(reply: RespReply, base64: boolean): string {
  return reply.kind === 'error'
    ? `{"error":${JSON.stringify(reply.message)}}`
    : `{"result":${stringifyOut(toJsonOut(reply, base64, true))}}`
}

// ---- the stand-in ------------------------------------------------------------------------

export async function startUpstashRestStandin(
  options: UpstashRestStandinOptions,
): Promise<UpstashRestStandin> {
  const { redisUrl } = options
  const host = options.host ?? '127.0.0.1'
  const token = options.token ?? randomBytes(24).toString('base64url')
  const faults = options.faults ?? new FaultInjector()
  const maxBodyBytes = options.maxBodyBytes ?? 64 * 1024 * 1024
  const maxIdle = options.maxIdleTransactionConnections ?? 4
  const tokenBytes = Buffer.from(token, 'utf8')

  const listeners = new Set<(command: ExecutedCommand) => void>()
  const connections = new Set<RespConnection>()
  const idleTransactionConnections: RespConnection[] = []
  const parked = new Set<ServerResponse>()
  const closing = new AbortController()
  /** SHA-1 of a script as the client sent it → SHA-1 of the script Redis was given. */
  const scriptShas = new Map<string, string>()
  let shared: RespConnection | null = null
  let connecting: Promise<RespConnection> | null = null
  let syncToken = 0

  // The first connection proves Redis is reachable before the stand-in reports ready.
  if (!options.lazy) shared = await connect()

  async function connect(): Promise<RespConnection> {
    if (closing.signal.aborted) throw new Error('stand-in is closed')
    let connection: RespConnection
    try {
      connection = await RespConnection.connect(redisUrl)
    } catch {
      // Redis is not there (yet): what Upstash answers when its database is unreachable.
      throw new HttpError(503, 'ERR service unavailable (redis unreachable)')
    }
    if (closing.signal.aborted) {
      connection.close()
      throw new Error('stand-in is closed')
    }
    connections.add(connection)
    connection.onClose(() => connections.delete(connection))
    return connection
  }

  function sharedConnection(): Promise<RespConnection> {
    if (shared && !shared.closed) return Promise.resolve(shared)
    connecting ??= connect()
      .then((connection) => {
        shared = connection
        return connection
      })
      .finally(() => {
        connecting = null
      })
    return connecting
  }

  async function transactionConnection(): Promise<RespConnection> {
    for (let c = idleTransactionConnections.pop(); c; c = idleTransactionConnections.pop()) {
      if (!c.closed) return c
    }
    return connect()
  }

  function releaseTransactionConnection(connection: RespConnection, healthy: boolean): void {
    if (!healthy || closing.signal.aborted || connection.closed) connection.close()
    else if (idleTransactionConnections.length >= maxIdle) connection.close()
    else idleTransactionConnections.push(connection)
  }

  function record(prepared: Prepared, reply: RespReply, via: ExecutedCommand['via']): void {
    faults.stats.executed++
    if (listeners.size === 0) return
    const entry: ExecutedCommand = {
      argv: prepared.argv,
      error: reply.kind === 'error' ? reply.message : null,
      via,
    }
    for (const listener of listeners) listener(entry)
  }

  /** Validate one command and apply the script rewriting Redis needs. */
  function prepare(args: RespArg[]): Prepared | RespReply {
    const argv = args.map(argText)
    const unavailable = unavailableReason(argv)
    if (unavailable)
      return { kind: 'error', message: `ERR Command is not available: '${unavailable}'` }
    const name = (argv[0] ?? '').toUpperCase()
    const prepared: Prepared = { argv, args: [...args] }
    if ((name === 'EVAL' || name === 'EVAL_RO') && argv[1] !== undefined) {
      const rewritten = rewriteScriptForRedis(argv[1])
      if (rewritten !== undefined) {
        scriptShas.set(sha1(argv[1]), sha1(rewritten))
        prepared.args[1] = rewritten
      }
    } else if ((name === 'EVALSHA' || name === 'EVALSHA_RO') && argv[1] !== undefined) {
      const mapped = scriptShas.get(argv[1].toLowerCase())
      if (mapped) prepared.args[1] = mapped
    } else if (name === 'SCRIPT') {
      const sub = (argv[1] ?? '').toUpperCase()
      if (sub === 'LOAD' && argv[2] !== undefined) {
        const original = argv[2]
        const rewritten = rewriteScriptForRedis(original)
        if (rewritten !== undefined) {
          prepared.args[2] = rewritten
          prepared.transform = (reply) => {
            if (reply.kind !== 'bulk') return reply
            const originalSha = sha1(original)
            scriptShas.set(originalSha, sha1(rewritten))
            return { kind: 'bulk', value: Buffer.from(originalSha) }
          }
        }
      } else if (sub === 'EXISTS') {
        for (let i = 2; i < argv.length; i++) {
          const mapped = scriptShas.get((argv[i] ?? '').toLowerCase())
          if (mapped) prepared.args[i] = mapped
        }
      } else if (sub === 'FLUSH') {
        prepared.transform = (reply) => {
          if (reply.kind !== 'error') scriptShas.clear()
          return reply
        }
      }
    }
    return prepared
  }

  function isPrepared(value: Prepared | RespReply): value is Prepared {
    return 'argv' in value
  }

  /** Run independent commands on the shared connection; rejected ones never reach Redis. */
  async function runCommands(
    commands: RespArg[][],
    via: ExecutedCommand['via'],
  ): Promise<RespReply[]> {
    const prepared = commands.map(prepare)
    const runnable = prepared.filter(isPrepared)
    const connection = await sharedConnection()
    const replies = await connection.sendMany(runnable.map((p) => p.args))
    const byPrepared = new Map<Prepared, RespReply>()
    runnable.forEach((p, i) => {
      const reply = replies[i]!
      record(p, reply, via)
      byPrepared.set(p, p.transform ? p.transform(reply) : reply)
    })
    return prepared.map((p) => (isPrepared(p) ? byPrepared.get(p)! : p))
  }

  /** MULTI … EXEC on a connection of its own; returns the per-command replies. */
  async function runTransaction(commands: RespArg[][]): Promise<RespReply[]> {
    const prepared: Prepared[] = []
    for (const args of commands) {
      const p = prepare(args)
      if (!isPrepared(p)) throw new HttpError(400, p.kind === 'error' ? p.message : 'ERR rejected')
      prepared.push(p)
    }
    const connection = await transactionConnection()
    let healthy = false
    try {
      const replies = await connection.sendMany([
        ['MULTI'],
        ...prepared.map((p) => p.args),
        ['EXEC'],
      ])
      const exec = replies[replies.length - 1]!
      healthy = true
      if (exec.kind !== 'array' || exec.value === null) {
        // Discarded as a whole: report the first queueing error (more useful than EXECABORT).
        const queued = replies.slice(1, -1).find((reply) => reply.kind === 'error')
        const message =
          queued?.kind === 'error'
            ? queued.message
            : exec.kind === 'error'
              ? exec.message
              : 'EXECABORT Transaction discarded'
        throw new HttpError(400, message)
      }
      const results = exec.value
      if (results.length !== prepared.length) throw new Error('EXEC returned an unexpected count')
      return prepared.map((p, i) => {
        const reply = results[i]!
        record(p, reply, 'multi-exec')
        return p.transform ? p.transform(reply) : reply
      })
    } finally {
      releaseTransactionConnection(connection, healthy)
    }
  }

  function delay(ms: number): Promise<void> {
    if (ms <= 0 || closing.signal.aborted) return Promise.resolve()
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer)
        closing.signal.removeEventListener('abort', done)
        resolve()
      }
      const timer = setTimeout(done, ms)
      closing.signal.addEventListener('abort', done)
    })
  }

  function readBody(req: IncomingMessage): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = []
      let size = 0
      req.on('data', (chunk: Buffer) => {
        size += chunk.length
        if (size > maxBodyBytes) {
          reject(new HttpError(413, 'ERR max request size exceeded'))
          req.destroy()
          return
        }
        chunks.push(chunk)
      })
      req.on('end', () => resolve(Buffer.concat(chunks)))
      req.on('error', reject)
      req.on('close', () => {
        if (!req.complete) reject(new Error('request aborted'))
      })
    })
  }

  function authorized(req: IncomingMessage, url: URL): boolean {
    const header = req.headers.authorization
    let presented: string | null = null
    if (typeof header === 'string') {
      const match = /^Bearer\s+(.+)$/i.exec(header.trim())
      presented = match?.[1] ?? null
    } else {
      presented = url.searchParams.get('_token')
    }
    if (presented === null) return false
    const bytes = Buffer.from(presented, 'utf8')
    return bytes.length === tokenBytes.length && timingSafeEqual(bytes, tokenBytes)
  }

  function send(res: ServerResponse, status: number, body: string): void {
    if (res.destroyed || res.headersSent) return
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      'upstash-sync-token': String(syncToken),
    })
    res.end(body)
  }

  function sendError(res: ServerResponse, status: number, message: string): void {
    send(res, status, JSON.stringify({ error: message }))
  }

  function parseJson(body: Buffer): unknown {
    try {
      return JSON.parse(body.toString('utf8'))
    } catch {
      throw new HttpError(400, 'ERR failed to parse the request body as JSON')
    }
  }

  function commandList(body: Buffer): RespArg[][] {
    const parsed = parseJson(body)
    if (!Array.isArray(parsed))
      throw new HttpError(400, 'ERR the body must be an array of commands')
    if (parsed.length === 0) throw new HttpError(400, 'ERR no commands given')
    return parsed.map(toArgv)
  }

  /** The REST path form: /cmd/arg1/…, POST body as the last argument, then query pairs. */
  function pathCommand(url: URL, method: string, body: Buffer): RespArg[] {
    const segments = url.pathname.split('/').slice(1)
    if (segments.length > 1 && segments[segments.length - 1] === '') segments.pop()
    const args: RespArg[] = segments.map((segment) => {
      try {
        return decodeURIComponent(segment)
      } catch {
        throw new HttpError(400, 'ERR malformed path')
      }
    })
    if ((method === 'POST' || method === 'PUT') && body.length > 0) args.push(body)
    for (const [key, value] of url.searchParams) {
      if (key === '_token') continue
      args.push(key)
      if (value !== '') args.push(value)
    }
    return args
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET'
    const url = new URL(req.url ?? '/', 'http://standin')
    const body = await readBody(req)

    const decision = faults.decide()
    if (decision.kind === 'hang') {
      parked.add(res)
      const unpark = faults.park(() => {
        parked.delete(res)
        res.destroy()
      })
      res.on('close', () => {
        parked.delete(res)
        unpark()
      })
      return
    }
    await delay(decision.delayMs)
    if (closing.signal.aborted) {
      res.destroy()
      return
    }
    if (decision.kind === 'error') {
      sendError(res, 503, 'ERR service unavailable (injected fault)')
      return
    }

    if (!['GET', 'HEAD', 'POST', 'PUT'].includes(method)) {
      sendError(res, 405, 'Method Not Allowed')
      return
    }
    if (!authorized(req, url)) {
      sendError(res, 401, 'Unauthorized')
      return
    }
    const format = req.headers['upstash-response-format']
    if (typeof format === 'string' && format.toLowerCase() !== 'json') {
      throw new HttpError(400, `ERR Upstash-Response-Format '${format}' is not supported here`)
    }
    const encoding = req.headers['upstash-encoding']
    const base64 = typeof encoding === 'string' && encoding.toLowerCase() === 'base64'

    const path = url.pathname.replace(/\/+$/, '')
    if (path === '/pipeline' || path === '/multi-exec') {
      if (method !== 'POST' && method !== 'PUT') throw new HttpError(405, 'Method Not Allowed')
      const commands = commandList(body)
      const replies =
        path === '/pipeline'
          ? await runCommands(commands, 'pipeline')
          : await runTransaction(commands)
      syncToken++
      send(res, 200, `[${replies.map((reply) => itemJson(reply, base64)).join(',')}]`)
      return
    }
    const command = path === '' ? toArgv(parseJson(body)) : pathCommand(url, method, body)
    const [reply] = await runCommands([command], 'command')
    syncToken++
    send(res, reply!.kind === 'error' ? 400 : 200, itemJson(reply!, base64))
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (error instanceof HttpError) sendError(res, error.status, error.message)
      else sendError(res, 500, `ERR ${error instanceof Error ? error.message : String(error)}`)
    })
  })
  server.on('error', (error) => {
    // Re-listening after `refuse` can fail (e.g. the port was taken meanwhile).
    console.warn(`[upstash-rest stand-in] ${error.message}`)
  })

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(options.port ?? 0, host, () => {
        server.off('error', reject)
        resolve()
      })
    })
  } catch (error) {
    shared?.close()
    throw error
  }
  const port = (server.address() as AddressInfo).port
  const unbindRefusal = bindRefusal(server, faults, host, port)

  let closed: Promise<void> | null = null
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    token,
    port,
    faults,
    onCommand(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
    close() {
      closed ??= new Promise<void>((resolve) => {
        closing.abort()
        unbindRefusal()
        for (const res of parked) res.destroy()
        parked.clear()
        server.close(() => resolve())
        server.closeAllConnections()
        for (const connection of [...connections]) connection.close()
        idleTransactionConnections.length = 0
        listeners.clear()
      })
      return closed
    },
  }
}
