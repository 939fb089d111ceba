// The MCP glue's pure parts: which answer a client's Accept asks for, and the tools' JSON
// Schemas (what tools/list serves) built from the routes' zod schemas.
import { describe, expect, test } from 'vitest'
import { prefersStream } from '../../../src/mcp/route.ts'
import { toolJsonSchema } from '../../../src/mcp/schema.ts'
import { TOOLS, toolNamed } from '../../../src/mcp/tools.ts'

describe('prefersStream', () => {
  test.each([
    ['application/json, text/event-stream', false],
    ['text/event-stream, application/json', true],
    ['application/json;q=0.5, text/event-stream', true],
    ['text/event-stream;q=0.1, application/json', false],
    ['text/event-stream', false], // not both: the transport answers 406
    ['', false],
    [undefined, false],
  ])('%s → %s', (accept, stream) => {
    expect(prefersStream(accept)).toBe(stream)
  })
})

describe('the tools', () => {
  test('every input and output schema is a self-contained object schema', () => {
    for (const tool of TOOLS) {
      for (const [schema, io] of [
        [tool.input(), 'input'],
        [tool.output(), 'output'],
      ] as const) {
        const json = toolJsonSchema(schema, io)
        expect(json.type, `${tool.name} ${io}`).toBe('object')
        expect(JSON.stringify(json), `${tool.name} ${io}`).not.toContain('$ref')
        expect(json).not.toHaveProperty('$defs')
      }
    }
  })

  test('each tool names the scope of the REST operation it mirrors', () => {
    for (const tool of TOOLS) expect(tool.scope).toBe(tool.operation.scope)
    expect(toolNamed('report_progress')?.scope).toBe('progress:write')
    expect(toolNamed('nope')).toBeUndefined()
    expect(toolNamed(42)).toBeUndefined()
  })

  test('report_progress takes exactly one of update and updates', async () => {
    const input = toolNamed('report_progress')!.input()
    const update = {
      user_id: 'u',
      task_id: 't',
      status: 'completed',
      progress: 1,
      occurred_at: '2026-01-01T00:00:00Z',
    }
    expect((await input.safeParseAsync({ update })).success).toBe(true)
    expect((await input.safeParseAsync({ updates: [update] })).success).toBe(true)
    expect((await input.safeParseAsync({})).success).toBe(false)
    expect((await input.safeParseAsync({ update, updates: [update] })).success).toBe(false)
    expect((await input.safeParseAsync({ updates: [] })).success).toBe(false)
  })
})
