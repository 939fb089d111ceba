// What an error says about the connection it came from, read without its message text.

/**
 * The first system error code (`ECONNREFUSED`, `ECONNRESET`, …) on the error or its causes
 * (`cause`, or the Neon driver's `sourceError`), up to four levels deep; undefined if none.
 */
export function networkCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code
    e =
      (e as { cause?: unknown; sourceError?: unknown }).cause ??
      (e as { sourceError?: unknown }).sourceError
  }
  return undefined
}
