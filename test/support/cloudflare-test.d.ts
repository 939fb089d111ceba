// The part of @cloudflare/vitest-plugin's `cloudflare:test` module the tests use. Declared
// here because its own types need @cloudflare/workers-types, whose globals clash with the
// DOM and Node types the rest of the project compiles against.
declare module 'cloudflare:test' {
  import type { ExecutionContext } from 'hono'
  export const env: Record<string, unknown>
  export function createExecutionContext(): ExecutionContext
  export function waitOnExecutionContext(ctx: ExecutionContext): Promise<void>
}
