// The PostgreSQL behind the local Neon stand-in. Node-only.
//
// Either a real server (when a URL is given and answers) or PGlite, the WASM build of
// PostgreSQL, served over TCP by `@electric-sql/pglite-socket`. PGlite is one backend: the
// socket server accepts a single connection at a time (a second one is dropped by Node's
// `server.maxConnections`), so callers must talk to it through ONE client. That is what
// `singleConnection` tells them.
import { PGlite } from '@electric-sql/pglite'
import { PGLiteSocketServer } from '@electric-sql/pglite-socket'
import { Client } from 'pg'

export interface PostgresUpstream {
  host: string
  port: number
  /** True for PGlite: hold exactly one connection and serialise all work on it. */
  singleConnection: boolean
  /** A postgres:// URL naming a usable user and database on this upstream. */
  url: string
  close(): Promise<void>
}

export interface ConnectPostgresOptions {
  /** A real server to use when it answers (e.g. TEST_POSTGRES_URL). */
  url?: string
  /** Where PGlite keeps its files; undefined keeps the database in memory. */
  pgliteDataDir?: string
  /** Skip the real server even when `url` answers. */
  preferPglite?: boolean
  /**
   * `url` must answer: throw `PostgresUnreachableError` rather than fall back to PGlite (the
   * configured database is the one whose data the caller expects to find again).
   */
  required?: boolean
}

/** The configured PostgreSQL did not answer; the message names its host, never credentials. */
export class PostgresUnreachableError extends Error {
  constructor(url: string) {
    const { hostname, port, pathname } = new URL(url)
    super(`PostgreSQL at ${hostname}:${port || 5432}${pathname} does not answer`)
    this.name = 'PostgresUnreachableError'
  }
}

export async function connectPostgres(
  opts: ConnectPostgresOptions = {},
): Promise<PostgresUpstream> {
  if (opts.url !== undefined && !opts.preferPglite) {
    if (await answers(opts.url)) return realServer(opts.url)
    if (opts.required) throw new PostgresUnreachableError(opts.url)
  }
  return startPglite(opts.pgliteDataDir)
}

/** True when a real login and `select 1` succeed within a short timeout. */
export async function answers(url: string): Promise<boolean> {
  const client = new Client({ connectionString: url, connectionTimeoutMillis: 2000 })
  // A server that drops us mid-handshake must not crash the process with an unhandled 'error'.
  client.on('error', () => {})
  try {
    await client.connect()
    await client.query('select 1')
    return true
  } catch {
    return false
  } finally {
    await client.end().catch(() => {})
  }
}

function realServer(url: string): PostgresUpstream {
  const { hostname, port } = new URL(url)
  return {
    host: hostname.replace(/^\[|\]$/g, ''),
    port: port === '' ? 5432 : Number(port),
    singleConnection: false,
    url,
    // Nothing to release: the server is not ours, and pools belong to whoever made them.
    close: async () => {},
  }
}

async function startPglite(dataDir: string | undefined): Promise<PostgresUpstream> {
  const db = await PGlite.create(dataDir ?? 'memory://')
  // maxConnections stays at its default of 1: the multiplexer for more is documented as not
  // covering every case (notably transactions), and one serialised client is all we need.
  const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0 })
  try {
    await server.start()
  } catch (err) {
    await db.close()
    throw err
  }
  const port = listeningPort(server.getServerConn())
  let closing: Promise<void> | undefined
  return {
    host: '127.0.0.1',
    port,
    singleConnection: true,
    // PGlite ignores user, password and database names at startup; these are its defaults.
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    close: () => {
      closing ??= (async () => {
        await server.stop()
        await db.close()
      })()
      return closing
    },
  }
}

/** `getServerConn()` answers "host:port" once listening (port 0 was replaced by the real one). */
function listeningPort(conn: string): number {
  const port = Number(conn.slice(conn.lastIndexOf(':') + 1))
  if (!Number.isInteger(port) || port <= 0) {
    throw new Error(`pglite-socket did not report a port (got "${conn}")`)
  }
  return port
}
