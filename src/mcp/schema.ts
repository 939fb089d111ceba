// A tool's JSON Schema from its zod schema: zod's own converter (as the OpenAPI document uses),
// with the registered components inlined, so each tool's schema stands alone (MCP hosts read
// `inputSchema` without resolving references; none of ours is recursive).
import * as z from 'zod/mini'

export type JsonSchemaObject = { type: 'object'; [keyword: string]: unknown }

/**
 * `schema` as a draft 2020-12 JSON Schema (the dialect MCP assumes without `$schema`), as its
 * `io` side sees it: `input` for what a caller sends, `output` for what a result holds.
 * Throws when the schema is not an object schema (MCP requires `type: "object"`).
 */
export function toolJsonSchema(schema: z.ZodMiniType, io: 'input' | 'output'): JsonSchemaObject {
  const {
    $schema: _,
    $defs = {},
    ...root
  } = z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'throw' }) as {
    $schema?: string
    $defs?: Record<string, unknown>
    [keyword: string]: unknown
  }
  const inline = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(inline)
    if (!node || typeof node !== 'object') return node
    const { $ref, ...rest } = node as Record<string, unknown>
    const own = Object.fromEntries(Object.entries(rest).map(([k, v]) => [k, inline(v)]))
    if (typeof $ref !== 'string') return $ref === undefined ? own : { $ref, ...own }
    const id = /^#\/\$defs\/(.+)$/.exec($ref)?.[1]
    if (id === undefined || !(id in $defs)) throw new Error(`tool schema: unresolved ${$ref}`)
    return { ...(inline($defs[id]) as object), ...own }
  }
  const inlined = inline(root) as JsonSchemaObject
  if (inlined.type !== 'object') throw new Error('tool schema: not an object schema')
  return inlined
}
