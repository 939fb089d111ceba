// A small RESP2 client over node:net for the local stand-ins. Node-only.
//
// One connection, commands pipelined: every command written is answered in order, so
// pending replies wait in a FIFO. Binary-safe: arguments may be strings (sent as UTF-8) or
// Buffers, bulk replies come back as Buffers. Redis error replies are values (kind 'error'),
// not rejections; a promise rejects only when the connection fails or is closed.
import { Socket } from 'node:net'

export type RespReply =
  | { kind: 'simple'; value: string }
  | { kind: 'error'; message: string }
  /** Kept as the decimal text Redis sent, so 64-bit integers survive untouched. */
  | { kind: 'integer'; value: string }
  | { kind: 'bulk'; value: Buffer | null }
  | { kind: 'array'; value: RespReply[] | null }

export type RespArg = string | Buffer

export interface RespConnectOptions {
  /** Milliseconds allowed for the TCP connect (and AUTH/SELECT); default 2000. */
  connectTimeoutMs?: number
}

interface Pending {
  resolve: (reply: RespReply) => void
  reject: (error: Error) => void
}

const CRLF = Buffer.from('\r\n')

/** Encode one command as a RESP array of bulk strings. */
export function encodeCommand(args: readonly RespArg[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)]
  for (const arg of args) {
    const bytes = typeof arg === 'string' ? Buffer.from(arg, 'utf8') : arg
    parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, CRLF)
  }
  return Buffer.concat(parts)
}

/**
 * Parse one reply starting at `offset`. Returns the reply and the offset after it, or
 * undefined when the buffer does not yet hold the whole reply.
 */
export function parseReply(
  buf: Buffer,
  offset: number,
): { reply: RespReply; next: number } | undefined {
  if (offset >= buf.length) return undefined
  const lineEnd = buf.indexOf(CRLF, offset + 1)
  if (lineEnd === -1) return undefined
  const type = buf[offset]
  const line = buf.toString('utf8', offset + 1, lineEnd)
  const after = lineEnd + 2
  switch (type) {
    case 0x2b /* + */:
      return { reply: { kind: 'simple', value: line }, next: after }
    case 0x2d /* - */:
      return { reply: { kind: 'error', message: line }, next: after }
    case 0x3a /* : */:
      if (!/^-?\d+$/.test(line)) throw new Error(`RESP: bad integer ${JSON.stringify(line)}`)
      return { reply: { kind: 'integer', value: line }, next: after }
    case 0x24 /* $ */:
      {
        const length = Number(line)
        if (!Number.isInteger(length) || length < -1)
          throw new Error(`RESP: bad bulk length ${line}`)
        if (length === -1) return { reply: { kind: 'bulk', value: null }, next: after }
        if (buf.length < after + length + 2) return undefined
        const value = Buffer.from(buf.subarray(after, after + length))
        return { reply: { kind: 'bulk', value }, next: after + length + 2 }
      }
    case 0x2a /* * */:
      {
        const count = Number(line)
        if (!Number.isInteger(count) || count < -1)
          throw new Error(`RESP: bad array length ${line}`)
        if (count === -1) return { reply: { kind: 'array', value: null }, next: after }
        const items: RespReply[] = []
        let next = after
        for (let i = 0; i < count; i++) {
          const parsed = parseReply(buf, next)
          if (!parsed) return undefined
          items.push(parsed.reply)
          next = parsed.next
        }
        return { reply: { kind: 'array', value: items }, next }
      }
    default:
      throw new Error(`RESP: unexpected type byte 0x${(type ?? 0).toString(16)}`)
  }
}

export class RespConnection {
  readonly #socket: Socket
  readonly #pending: Pending[] = []
  #buffer: Buffer = Buffer.alloc(0)
  #closedError: Error | null = null
  readonly #closeListeners = new Set<(error: Error) => void>()

  private constructor(socket: Socket) {
    this.#socket = socket
    socket.on('data', (chunk: Buffer) => this.#onData(chunk))
    socket.on('error', (error) => this.#fail(error))
    socket.on('close', () => this.#fail(new Error('Redis connection closed')))
  }

  /** Connect to `redis://[user:password@]host[:port][/db]`, authenticating and selecting the db. */
  static async connect(url: string, options: RespConnectOptions = {}): Promise<RespConnection> {
    const parsed = new URL(url)
    if (parsed.protocol !== 'redis:')
      throw new Error(`unsupported Redis URL ${url} (redis:// only)`)
    const host = parsed.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1'
    const port = Number(parsed.port || 6379)
    const timeoutMs = options.connectTimeoutMs ?? 2000
    const socket = new Socket()
    socket.setNoDelay(true)
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy()
        reject(new Error(`Redis connect to ${host}:${port} timed out`))
      }, timeoutMs)
      socket.once('error', (error) => {
        clearTimeout(timer)
        reject(error)
      })
      socket.connect(port, host, () => {
        clearTimeout(timer)
        socket.removeAllListeners('error')
        resolve()
      })
    })
    const connection = new RespConnection(socket)
    try {
      const password = decodeURIComponent(parsed.password)
      const username = decodeURIComponent(parsed.username)
      if (password) {
        const auth = await connection.send(
          username ? ['AUTH', username, password] : ['AUTH', password],
        )
        if (auth.kind === 'error') throw new Error(`Redis AUTH failed: ${auth.message}`)
      }
      const db = parsed.pathname.replace(/^\//, '')
      if (db && db !== '0') {
        const selected = await connection.send(['SELECT', db])
        if (selected.kind === 'error') throw new Error(`Redis SELECT failed: ${selected.message}`)
      }
    } catch (error) {
      connection.close()
      throw error
    }
    return connection
  }

  /** True once the connection failed or was closed; it cannot be used again. */
  get closed(): boolean {
    return this.#closedError !== null
  }

  /** Number of commands written and not yet answered. */
  get inFlight(): number {
    return this.#pending.length
  }

  /** Called once when the connection fails or closes. */
  onClose(listener: (error: Error) => void): () => void {
    this.#closeListeners.add(listener)
    return () => this.#closeListeners.delete(listener)
  }

  send(args: readonly RespArg[]): Promise<RespReply> {
    return this.sendMany([args]).then((replies) => replies[0]!)
  }

  /** Write several commands in one go; resolves with their replies, in order. */
  sendMany(commands: readonly (readonly RespArg[])[]): Promise<RespReply[]> {
    if (this.#closedError) return Promise.reject(this.#closedError)
    if (commands.length === 0) return Promise.resolve([])
    const promises = commands.map(
      () =>
        new Promise<RespReply>((resolve, reject) => {
          this.#pending.push({ resolve, reject })
        }),
    )
    this.#socket.write(Buffer.concat(commands.map((args) => encodeCommand(args))))
    return Promise.all(promises)
  }

  close(): void {
    this.#fail(new Error('Redis connection closed by client'))
  }

  #onData(chunk: Buffer): void {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk])
    let offset = 0
    try {
      while (offset < this.#buffer.length) {
        const parsed = parseReply(this.#buffer, offset)
        if (!parsed) break
        offset = parsed.next
        const pending = this.#pending.shift()
        if (!pending) throw new Error('RESP: reply without a pending command')
        pending.resolve(parsed.reply)
      }
    } catch (error) {
      this.#fail(error instanceof Error ? error : new Error(String(error)))
      return
    }
    this.#buffer = offset === this.#buffer.length ? Buffer.alloc(0) : this.#buffer.subarray(offset)
  }

  #fail(error: Error): void {
    if (this.#closedError) return
    this.#closedError = error
    this.#socket.destroy()
    const pending = this.#pending.splice(0)
    for (const { reject } of pending) reject(error)
    for (const listener of this.#closeListeners) listener(error)
    this.#closeListeners.clear()
  }
}
