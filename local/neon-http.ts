// A local stand-in for Neon's SQL-over-HTTP endpoint, the one `neon()` from
// @neondatabase/serverless posts to, in front of a real PostgreSQL (or PGlite). Node-only.
//
// Wire protocol, as the official driver speaks it:
//   POST /sql, no Content-Type, JSON body {query, params} or {queries: [{query, params}, …]}.
//   Headers: Neon-Connection-String (the postgres:// URL), Neon-Raw-Text-Output: true,
//   Neon-Array-Mode: true, and for batches Neon-Batch-Isolation-Level / -Read-Only / -Deferrable.
//   200 → {command, rowCount, rows, fields, rowAsArray} (or {results: [...]} for a batch), every
//   cell in PostgreSQL's text output so the driver's own type parsers do the decoding.
//   400 → a PostgreSQL error as JSON (the driver copies its fields onto NeonDbError).
//   Any other status → a text body; the driver reports "Server error (HTTP status N): <text>".
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http'
import {
  type ClientBase,
  DatabaseError,
  Client as PgClient,
  Pool,
  type QueryArrayConfig,
  type QueryArrayResult,
} from 'pg'
import { bindRefusal, FaultInjector, sleep } from './faults.ts'
import type { PostgresUpstream } from './postgres.ts'

export interface NeonHttpStandin {
  /** The endpoint for `neonConfig.fetchEndpoint`, e.g. http://127.0.0.1:PORT/sql. */
  url: string
  port: number
  faults: FaultInjector
  /**
   * A postgres:// URL whose host:port is this stand-in (as a Neon endpoint host would be).
   * Whatever the host, the stand-in routes every connection string to its upstream.
   */
  connectionString(opts?: ConnectionStringOptions): string
  /** Stops listening, drops open (even hung) requests and ends the upstream connections. */
  close(): Promise<void>
}

export interface ConnectionStringOptions {
  database?: string
  /** Sent as `options=-c search_path=<value>`, the way per-test schemas are selected. */
  searchPath?: string
  user?: string
  password?: string
}

export interface StartNeonHttpOptions {
  upstream: PostgresUpstream
  /** 0 or undefined picks a free port. */
  port?: number
  host?: string
  /** Share an injector (e.g. with a control server); by default the stand-in makes its own. */
  faults?: FaultInjector
}

// Neon's proxy refuses request bodies above 10 MiB.
const MAX_BODY_BYTES = 10 * 1024 * 1024
// Real server: one small pool per (user, password, database, options), least recently used
// evicted first, so a test run with many schemas cannot exhaust max_connections.
const MAX_POOLS = 16
const POOL_SIZE = 4
// PGlite's socket server drops a second connection while the old one is still being torn down,
// so reconnecting gets a few short retries.
const CONNECT_ATTEMPTS = 5

export async function startNeonHttpStandin(opts: StartNeonHttpOptions): Promise<NeonHttpStandin> {
  const faults = opts.faults ?? new FaultInjector()
  const host = opts.host ?? '127.0.0.1'
  const upstream = opts.upstream.singleConnection
    ? singleConnectionUpstream(opts.upstream)
    : pooledUpstream(opts.upstream)
  // Releases for this server's parked (hung) requests, so close() can drop them.
  const hung = new Set<() => void>()

  const server = createServer((req, res) => {
    handleRequest(req, res).catch((err: unknown) => sendFailure(res, err))
  })
  // Re-listening after a `refuse` plan can fail (say the port was taken meanwhile); report it
  // instead of crashing the test process.
  server.on('error', (err) => console.error('[neon-http stand-in]', err))

  async function handleRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://stand-in').pathname
    if (path !== '/sql') return sendJson(res, 404, { message: `no route for ${path}` })
    if (req.method !== 'POST') {
      res.setHeader('Allow', 'POST')
      return sendJson(res, 405, { message: 'use POST' })
    }

    const decision = faults.decide()
    if (decision.kind === 'hang') return park(req, res)
    await sleep(decision.delayMs)
    // An injected error is decided before anything runs: the statement must not take effect.
    if (decision.kind === 'error') return sendText(res, 503, 'injected fault: database unavailable')

    const route = routeFromHeaders(req.headers)
    const request = parseSqlRequest(await readBody(req))
    const arrayMode = headerValue(req.headers, 'neon-array-mode') === 'true'
    const count = () => {
      faults.stats.executed++
    }
    if (request.batch) {
      const begin = beginStatement(req.headers)
      const results = await upstream.withSession(route, (client) =>
        runTransaction(client, request.statements, begin, arrayMode, count),
      )
      return sendJson(res, 200, { results })
    }
    const { statement } = request
    const result = await upstream.withSession(route, (client) =>
      runStatement(client, statement, arrayMode, count),
    )
    return sendJson(res, 200, result)
  }

  /** Accept and never answer, until the plan changes or the stand-in closes. */
  function park(req: IncomingMessage, res: ServerResponse): void {
    // A plain destroy (no error) looks to the client like a dropped connection.
    const destroy = () => req.socket.destroy()
    const unpark = faults.park(destroy)
    const release = () => {
      unpark()
      destroy()
    }
    hung.add(release)
    res.once('close', () => {
      unpark()
      hung.delete(release)
    })
  }

  const port = await listen(server, opts.port ?? 0, host)
  const unbindRefusal = bindRefusal(server, faults, host, port)
  const urlHost = hostForUrl(host)

  let closing: Promise<void> | undefined
  async function close(): Promise<void> {
    unbindRefusal()
    for (const release of [...hung]) release()
    await new Promise<void>((resolve) => {
      if (server.listening) {
        server.close(() => resolve())
      } else {
        // Refusing, or about to listen again: make sure a pending listen does not outlive us.
        server.once('listening', () => server.close())
        resolve()
      }
      // Idle keep-alive sockets and in-flight requests would otherwise keep close() waiting.
      server.closeAllConnections()
    })
    await upstream.close()
  }

  return {
    url: `http://${urlHost}:${port}/sql`,
    port,
    faults,
    connectionString: (csOpts = {}) => connectionString(opts.upstream, urlHost, port, csOpts),
    close: () => {
      closing ??= close()
      return closing
    },
  }
}

// ---------------------------------------------------------------------------------------------
// Requests

interface Statement {
  query: string
  params: (string | null)[]
}

type SqlRequest = { batch: false; statement: Statement } | { batch: true; statements: Statement[] }

/** Where a request goes: Neon's proxy takes these from the connection string. */
interface Route {
  user: string
  password: string | undefined
  database: string
  /** Run-time settings from the libpq `options` parameter (`-c name=value`), sorted by name. */
  settings: ReadonlyMap<string, string>
}

/** An error answered with its own status and a Neon-like JSON message. */
class RequestError extends Error {
  readonly status: number

  constructor(status: number, message: string) {
    super(message)
    this.status = status
  }
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > MAX_BODY_BYTES) throw new RequestError(413, 'request body too large')
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}

/** The driver sends no Content-Type, so the body is JSON by convention, not by header. */
function parseSqlRequest(body: string): SqlRequest {
  let value: unknown
  try {
    value = JSON.parse(body)
  } catch {
    throw new RequestError(400, 'request body is not valid JSON')
  }
  if (isRecord(value) && 'queries' in value) {
    if (!Array.isArray(value.queries)) throw new RequestError(400, '"queries" must be an array')
    return { batch: true, statements: value.queries.map(parseStatement) }
  }
  return { batch: false, statement: parseStatement(value) }
}

function parseStatement(value: unknown): Statement {
  if (!isRecord(value) || typeof value.query !== 'string') {
    throw new RequestError(400, 'expected {"query": string, "params": array}')
  }
  const params = value.params ?? []
  if (!Array.isArray(params)) throw new RequestError(400, '"params" must be an array')
  return { query: value.query, params: params.map(textParam) }
}

/**
 * The driver has already turned every value into PostgreSQL text (prepareValue; bytea as \x…).
 * Like Neon's proxy, accept other JSON scalars too and pass their JSON spelling.
 */
function textParam(value: unknown): string | null {
  if (value === null || typeof value === 'string') return value
  if (typeof value === 'number' || typeof value === 'boolean') return String(value)
  throw new RequestError(400, 'query parameters must be strings, numbers, booleans or null')
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name]
  return Array.isArray(value) ? value[0] : value
}

/** Reads the Neon-Connection-String header; messages follow Neon's proxy. */
function routeFromHeaders(headers: IncomingHttpHeaders): Route {
  const raw = headerValue(headers, 'neon-connection-string')
  if (raw === undefined || raw === '') {
    throw new RequestError(400, 'invalid header: neon-connection-string')
  }
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    throw new RequestError(400, 'invalid connection string: not a URL')
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new RequestError(400, 'incorrect scheme')
  }
  if (url.hostname === '') throw new RequestError(400, 'missing hostname')
  const user = decodeUrlPart(url.username)
  if (user === '') throw new RequestError(400, 'missing username')
  const database = decodeUrlPart(url.pathname.replace(/^\//, ''))
  if (database === '') throw new RequestError(400, 'missing database name')
  const password = url.password === '' ? undefined : decodeUrlPart(url.password)
  // Form decoding ('+' is a space), unlike libpq: the driver rebuilds the connection string
  // through URLSearchParams when it appends application_name, so `-c%20x` arrives as `-c+x`.
  // Neon's proxy decodes the query the same way.
  const options = url.searchParams.get('options') ?? ''
  return { user, password, database, settings: parseStartupOptions(options) }
}

function decodeUrlPart(part: string): string {
  try {
    return decodeURIComponent(part)
  } catch {
    throw new RequestError(400, 'invalid connection string: bad percent-encoding')
  }
}

const SETTING_NAME = /^[a-z_][a-z0-9_$]*(\.[a-z_][a-z0-9_$]*)?$/

/**
 * Parses libpq `options` the way the server's startup does: whitespace-separated switches,
 * backslash escapes, `-c name=value`, `-cname=value` or `--name=value` (dashes in names become
 * underscores). Neon's own `endpoint=`/`project=` routing hints are accepted and dropped.
 */
function parseStartupOptions(options: string): ReadonlyMap<string, string> {
  const settings = new Map<string, string>()
  const words = splitOptionWords(options)
  for (let i = 0; i < words.length; i++) {
    const word = words[i] ?? ''
    let assignment: string | undefined
    if (word === '-c') assignment = words[++i]
    else if (word.startsWith('--')) assignment = word.slice(2)
    else if (word.startsWith('-c')) assignment = word.slice(2)
    else if (/^(endpoint|project)=/.test(word)) continue
    const eq = assignment?.indexOf('=') ?? -1
    if (assignment === undefined || eq <= 0) {
      throw new RequestError(400, `unsupported startup option in connection string: ${word}`)
    }
    const name = assignment.slice(0, eq).replaceAll('-', '_').toLowerCase()
    if (!SETTING_NAME.test(name)) {
      throw new RequestError(400, `invalid setting name in connection string: ${name}`)
    }
    settings.set(name, assignment.slice(eq + 1))
  }
  return new Map([...settings].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
}

function splitOptionWords(options: string): string[] {
  const words: string[] = []
  let word = ''
  let inWord = false
  for (let i = 0; i < options.length; i++) {
    const ch = options[i] ?? ''
    if (ch === '\\' && i + 1 < options.length) {
      word += options[++i]
      inWord = true
    } else if (/\s/.test(ch)) {
      if (inWord) words.push(word)
      word = ''
      inWord = false
    } else {
      word += ch
      inWord = true
    }
  }
  if (inWord) words.push(word)
  return words
}

/** The inverse of splitOptionWords for one value. */
function escapeOptionValue(value: string): string {
  return value.replace(/[\\\s]/g, (ch) => `\\${ch}`)
}

function optionsString(settings: ReadonlyMap<string, string>): string {
  return [...settings].map(([name, value]) => `-c ${name}=${escapeOptionValue(value)}`).join(' ')
}

const ISOLATION_LEVELS = new Map([
  ['ReadUncommitted', 'READ UNCOMMITTED'],
  ['ReadCommitted', 'READ COMMITTED'],
  ['RepeatableRead', 'REPEATABLE READ'],
  ['Serializable', 'SERIALIZABLE'],
])

/** BEGIN with the batch's transaction modes (unset headers keep the server's defaults). */
function beginStatement(headers: IncomingHttpHeaders): string {
  const modes: string[] = []
  const level = headerValue(headers, 'neon-batch-isolation-level')
  if (level !== undefined) {
    const sqlLevel = ISOLATION_LEVELS.get(level)
    if (sqlLevel === undefined) throw new RequestError(400, `invalid isolation level: ${level}`)
    modes.push(`ISOLATION LEVEL ${sqlLevel}`)
  }
  const readOnly = booleanHeader(headers, 'neon-batch-read-only')
  if (readOnly !== undefined) modes.push(readOnly ? 'READ ONLY' : 'READ WRITE')
  const deferrable = booleanHeader(headers, 'neon-batch-deferrable')
  if (deferrable !== undefined) modes.push(deferrable ? 'DEFERRABLE' : 'NOT DEFERRABLE')
  return modes.length === 0 ? 'BEGIN' : `BEGIN ${modes.join(', ')}`
}

function booleanHeader(headers: IncomingHttpHeaders, name: string): boolean | undefined {
  const value = headerValue(headers, name)
  if (value === undefined) return undefined
  if (value === 'true' || value === 'false') return value === 'true'
  throw new RequestError(400, `invalid header: ${name} must be true or false`)
}

// ---------------------------------------------------------------------------------------------
// Execution

interface WireField {
  name: string
  tableID: number
  columnID: number
  dataTypeID: number
  dataTypeSize: number
  dataTypeModifier: number
  format: string
}

interface WireResult {
  command: string
  rowCount: number | null
  rows: unknown[]
  fields: WireField[]
  rowAsArray: boolean
}

// Every type comes back exactly as PostgreSQL spelled it (text format): the driver parses.
const rawText = (value: string): string => value
const RAW_TEXT_TYPES = { getTypeParser: () => rawText }

async function runStatement(
  client: ClientBase,
  statement: Statement,
  arrayMode: boolean,
  countExecuted: () => void,
): Promise<WireResult> {
  // queryMode 'extended' even without parameters: Neon always uses the extended protocol, so
  // "select 1; select 2" is an error (42601) there, and must be here too.
  const config: QueryArrayConfig<(string | null)[]> & { queryMode: 'extended' } = {
    text: statement.query,
    values: statement.params,
    rowMode: 'array',
    types: RAW_TEXT_TYPES,
    queryMode: 'extended',
  }
  countExecuted()
  return toWireResult(await client.query(config), arrayMode)
}

async function runTransaction(
  client: ClientBase,
  statements: Statement[],
  begin: string,
  arrayMode: boolean,
  countExecuted: () => void,
): Promise<WireResult[]> {
  await client.query(begin)
  try {
    const results: WireResult[] = []
    for (const statement of statements) {
      results.push(await runStatement(client, statement, arrayMode, countExecuted))
    }
    await client.query('COMMIT')
    return results
  } catch (err) {
    // Leave nothing behind. Should ROLLBACK fail too, the session cleanup drops the connection.
    await client.query('ROLLBACK').catch(() => {})
    throw err
  }
}

function toWireResult(result: QueryArrayResult, arrayMode: boolean): WireResult {
  const fields = result.fields.map(
    (f): WireField => ({
      name: f.name,
      tableID: f.tableID,
      columnID: f.columnID,
      dataTypeID: f.dataTypeID,
      dataTypeSize: f.dataTypeSize,
      dataTypeModifier: f.dataTypeModifier,
      format: f.format,
    }),
  )
  const rows = arrayMode
    ? result.rows
    : result.rows.map((row) => Object.fromEntries(fields.map((f, i) => [f.name, row[i]])))
  return { command: result.command, rowCount: result.rowCount, rows, fields, rowAsArray: arrayMode }
}

/** A place to run statements whose session settings match a route. */
interface Upstream {
  withSession<T>(route: Route, work: (client: ClientBase) => Promise<T>): Promise<T>
  close(): Promise<void>
}

/** A connection that errored outside SQL (or fatally) must not be reused. */
function isConnectionFatal(err: unknown): boolean {
  if (!(err instanceof DatabaseError)) return true
  return err.severity === 'FATAL' || err.severity === 'PANIC'
}

/** Real server: per-route pools; the route's settings travel as the startup `options`. */
function pooledUpstream(target: PostgresUpstream): Upstream {
  const pools = new Map<string, Pool>() // insertion order is recency order
  const ending = new Set<Promise<void>>()

  function retire(pool: Pool): void {
    const done = pool.end().catch(() => {})
    ending.add(done)
    void done.then(() => ending.delete(done))
  }

  function poolFor(route: Route): Pool {
    const options = optionsString(route.settings)
    const key = JSON.stringify([route.user, route.password ?? null, route.database, options])
    const existing = pools.get(key)
    if (existing !== undefined) {
      pools.delete(key)
      pools.set(key, existing)
      return existing
    }
    const pool = new Pool({
      host: target.host,
      port: target.port,
      user: route.user,
      password: route.password,
      database: route.database,
      options: options === '' ? undefined : options,
      max: POOL_SIZE,
      idleTimeoutMillis: 10_000,
      allowExitOnIdle: true,
    })
    // An idle connection that dies (server restart) is dropped by the pool; nothing to do.
    pool.on('error', () => {})
    pools.set(key, pool)
    if (pools.size > MAX_POOLS) {
      const oldest = pools.keys().next()
      if (!oldest.done) {
        const evicted = pools.get(oldest.value)
        pools.delete(oldest.value)
        if (evicted !== undefined) retire(evicted)
      }
    }
    return pool
  }

  return {
    async withSession(route, work) {
      const client = await poolFor(route).connect()
      // A checked-out client has no error listener; the failure reaches us through the query.
      const ignore = () => {}
      client.on('error', ignore)
      let discard = false
      try {
        return await work(client)
      } catch (err) {
        discard = isConnectionFatal(err)
        throw err
      } finally {
        client.off('error', ignore)
        // A statement may have left a transaction open (a bare BEGIN): never hand that on.
        client.release(discard || client.getTransactionStatus() !== 'I')
      }
    },
    async close() {
      for (const pool of pools.values()) retire(pool)
      pools.clear()
      await Promise.all(ending)
    },
  }
}

/**
 * PGlite: one client and a queue, since its socket server serves a single connection. The
 * database name is ignored (PGlite has one); the route's settings are applied per request with
 * set_config, only when they differ from what the session already has.
 */
function singleConnectionUpstream(target: PostgresUpstream): Upstream {
  const base = new URL(target.url)
  let client: PgClient | undefined
  // Settings the session has now; undefined when unknown (fresh connection or failed SET).
  let applied: ReadonlyMap<string, string> | undefined
  let queue: Promise<unknown> = Promise.resolve()
  let closed = false

  /** Run `task` after everything queued before it, whatever their outcome. */
  function exclusive<T>(task: () => Promise<T>): Promise<T> {
    const run = queue.then(task)
    queue = run.catch(() => {})
    return run
  }

  function drop(c: PgClient): void {
    if (client === c) {
      client = undefined
      applied = undefined
    }
    c.end().catch(() => {})
  }

  async function connect(): Promise<PgClient> {
    for (let attempt = 1; ; attempt++) {
      const c = new PgClient({
        host: target.host,
        port: target.port,
        user: decodeURIComponent(base.username) || 'postgres',
        database: decodeURIComponent(base.pathname.slice(1)) || 'postgres',
      })
      // A lost connection is noticed here and replaced on the next request.
      c.on('error', () => drop(c))
      c.on('end', () => drop(c))
      try {
        await c.connect()
        return c
      } catch (err) {
        c.end().catch(() => {})
        if (attempt >= CONNECT_ATTEMPTS || err instanceof DatabaseError) throw err
        await sleep(25 * attempt)
      }
    }
  }

  async function applySettings(c: PgClient, wanted: ReadonlyMap<string, string>): Promise<void> {
    if (applied !== undefined && sameSettings(applied, wanted)) return
    applied = undefined
    // RESET ALL also undoes anything an earlier request SET by hand.
    await c.query('RESET ALL')
    for (const [name, value] of wanted) {
      // set_config takes the value as a string, exactly like `-c name=value`: no quoting needed.
      await c.query('select set_config($1, $2, false)', [name, value])
    }
    applied = wanted
  }

  /** After a request: no open transaction may leak into the next one. */
  async function settle(c: PgClient): Promise<void> {
    if (client !== c || c.getTransactionStatus() === 'I') return
    try {
      await c.query('ROLLBACK')
    } catch {
      drop(c)
    }
  }

  return {
    withSession(route, work) {
      return exclusive(async () => {
        if (closed) throw new Error('the Neon stand-in is closed')
        client ??= await connect()
        const c = client
        try {
          await applySettings(c, route.settings)
          return await work(c)
        } catch (err) {
          if (isConnectionFatal(err)) drop(c)
          throw err
        } finally {
          await settle(c)
        }
      })
    },
    async close() {
      closed = true
      // Ending first also fails a statement still running, so close() never waits on it.
      if (client !== undefined) drop(client)
      await queue
    },
  }
}

function sameSettings(a: ReadonlyMap<string, string>, b: ReadonlyMap<string, string>): boolean {
  if (a.size !== b.size) return false
  for (const [name, value] of a) if (b.get(name) !== value) return false
  return true
}

// ---------------------------------------------------------------------------------------------
// Answers

const ERROR_FIELDS = [
  'severity',
  'code',
  'detail',
  'hint',
  'position',
  'internalPosition',
  'internalQuery',
  'where',
  'schema',
  'table',
  'column',
  'dataType',
  'constraint',
  'file',
  'line',
  'routine',
] as const

/** PostgreSQL's error fields, the ones NeonDbError copies from a 400 body. */
function postgresErrorBody(err: DatabaseError): Record<string, string> {
  const body: Record<string, string> = { message: err.message }
  for (const field of ERROR_FIELDS) {
    const value = err[field]
    if (value !== undefined) body[field] = value
  }
  return body
}

function sendFailure(res: ServerResponse, err: unknown): void {
  if (res.headersSent || res.destroyed) {
    res.destroy()
    return
  }
  if (err instanceof RequestError) {
    sendJson(res, err.status, { message: err.message })
  } else if (err instanceof DatabaseError) {
    sendJson(res, 400, postgresErrorBody(err))
  } else {
    const message = err instanceof Error ? err.message : String(err)
    sendText(res, 500, `stand-in error: ${message}`)
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  if (res.destroyed) return
  res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body))
}

function sendText(res: ServerResponse, status: number, text: string): void {
  if (res.destroyed) return
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' }).end(text)
}

// ---------------------------------------------------------------------------------------------
// Addresses

function listen(server: ReturnType<typeof createServer>, port: number, host: string) {
  return new Promise<number>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      const address = server.address()
      if (address === null || typeof address === 'string') {
        reject(new Error('the stand-in is not listening on TCP'))
      } else {
        resolve(address.port)
      }
    })
  })
}

/** The host clients should dial: wildcard binds are reached through loopback. */
function hostForUrl(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1'
  if (host === '::') return '[::1]'
  return host.includes(':') ? `[${host}]` : host
}

function connectionString(
  upstream: PostgresUpstream,
  urlHost: string,
  port: number,
  opts: ConnectionStringOptions,
): string {
  // Defaults name a user and database the upstream is known to have.
  const base = new URL(upstream.url)
  const user = opts.user ?? (decodeURIComponent(base.username) || 'postgres')
  const password =
    opts.password ?? (base.password === '' ? undefined : decodeURIComponent(base.password))
  const database = opts.database ?? (decodeURIComponent(base.pathname.slice(1)) || 'postgres')
  const credentials =
    password === undefined
      ? encodeURIComponent(user)
      : `${encodeURIComponent(user)}:${encodeURIComponent(password)}`
  let url = `postgresql://${credentials}@${urlHost}:${port}/${encodeURIComponent(database)}`
  if (opts.searchPath !== undefined) {
    const options = `-c search_path=${escapeOptionValue(opts.searchPath)}`
    url += `?options=${encodeURIComponent(options)}`
  }
  return url
}
