// The test pool's known noise, dropped from `npm test`'s output so that what remains can be
// read: every line here has a cause outside src/, named beside its pattern. Anything else —
// an unhandled rejection in the code under test above all — still prints: vitest reports
// unhandled rejections in Node, the edge VM and workerd's runner isolate as errors and fails
// the run. Loaded by vitest.config.ts (the main process, where the pool writes workerd's
// structured logs to stdout/stderr).

import { stripVTControlCharacters } from 'node:util'

const NOISE: readonly { pattern: RegExp; cause: string }[] = [
  {
    // e.g. "uncaught exception; source = Uncaught (in promise); stack = Error: Network
    // connection lost." and its twin "…exception = workerd/jsg/value.h:1535: disconnected…".
    pattern: /^uncaught exception; .*Network connection lost\.$/,
    cause:
      'workerd logs its own fetch internals failing when a fault test drops or refuses a connection (test/support fault proxies, stopped stand-ins): no JavaScript frame, and an unhandledrejection listener in the runner isolate sees nothing',
  },
  {
    pattern: /^exception = rust\/worker\/ffi\.rs:\d+: disconnected: /,
    cause: "the same dropped or refused connections, logged again by workerd's Rust network layer",
  },
  {
    pattern: /^stack: (\S*workerd@[0-9a-f]+ ?)+$/,
    cause: 'the native (workerd binary) stack of the two lines above; no JavaScript in it',
  },
  {
    pattern: /^A header value for "[^"]+" contains non-ASCII characters: /,
    cause:
      'test/scenarios/hostile.test.ts builds requests with non-ASCII header values on purpose; workerd warns about its UTF-8 quirk',
  },
  {
    pattern: /^Sourcemap for "[^"]*\/node_modules\/[^"]+" points to missing source files$/,
    cause:
      'vite, loading published packages for the peer tests (the MCP SDK, oauth4webapi): their source maps name src/ files the packages do not ship',
  },
  {
    pattern: /^Using secrets defined in \.dev\.vars$/,
    cause:
      'the workers pool reads wrangler.toml as wrangler dev does, and with it the .dev.vars `npm run dev` (or the e2e dev test) wrote; the scenarios dispatch with their own env (test/support/runtime-workers.ts), never those bindings',
  },
]

const isNoise = (line: string) => NOISE.some(({ pattern }) => pattern.test(line))

/** Wraps a stream's write so that known noise lines never reach it. Idempotent. */
function filter(stream: NodeJS.WriteStream): void {
  const marked = stream as NodeJS.WriteStream & { poolNoiseFiltered?: true }
  if (marked.poolNoiseFiltered) return
  marked.poolNoiseFiltered = true
  const write = stream.write.bind(stream) as (...args: unknown[]) => boolean
  stream.write = ((chunk: unknown, ...rest: unknown[]) => {
    if (typeof chunk !== 'string' && !(chunk instanceof Uint8Array)) return write(chunk, ...rest)
    const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8')
    // Vitest's own reporter lines never match; a workerd message arrives as whole lines.
    const kept = text
      .split('\n')
      .filter((line) => !isNoise(stripVTControlCharacters(line)))
      .join('\n')
    if (kept === text) return write(chunk, ...rest)
    if (kept.trim() === '') {
      const callback = rest.find((arg) => typeof arg === 'function') as (() => void) | undefined
      callback?.()
      return true
    }
    return write(kept, ...rest)
  }) as typeof stream.write
}

/** Filters the pool's known noise out of this process's stdout and stderr. */
export function filterPoolNoise(): void {
  filter(process.stdout)
  filter(process.stderr)
}
