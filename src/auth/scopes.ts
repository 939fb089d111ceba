// Scope strings (RFC 6749 §3.3): space-separated, order-insensitive sets.

export function parseScopes(scope: string | undefined): string[] {
  return scope ? [...new Set(scope.split(' ').filter(Boolean))] : []
}

export function formatScopes(scopes: Iterable<string>): string {
  return [...new Set(scopes)].sort().join(' ')
}

/**
 * The scopes to grant: the requested ones if all are allowed, every allowed one when none
 * were requested, or undefined when any requested scope is not allowed (invalid_scope).
 */
export function grantScopes(
  requested: string | undefined,
  allowed: readonly string[],
): string[] | undefined {
  const wanted = parseScopes(requested)
  if (wanted.length === 0) return [...allowed]
  return wanted.every((s) => allowed.includes(s)) ? wanted : undefined
}

/** Whether `needed` (one scope) is among `granted`'s; on every request, so without parsing. */
export function hasScope(granted: string, needed: string): boolean {
  return needed !== '' && !needed.includes(' ') && ` ${granted} `.includes(` ${needed} `)
}
