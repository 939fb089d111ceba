import { readFile } from 'node:fs/promises'
import { expect, test } from 'vitest'
import { replaceTable } from '../../local/config-table.ts'
import { replaceToolTable } from '../../local/mcp-tools-table.ts'

test('the README configuration table matches the tunables (run `npm run docs` to update)', async () => {
  const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8')
  expect(readme).toBe(replaceTable(readme))
})

test('the README shows the two set-up commands', async () => {
  const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8')
  expect(readme).toContain('npm run dev')
  expect(readme).toContain('npm test')
})

test('the MCP tool reference in docs/http.md matches the tools (run `npm run docs` to update)', async () => {
  const doc = await readFile(new URL('../../docs/http.md', import.meta.url), 'utf8')
  expect(doc).toBe(replaceToolTable(doc))
})
