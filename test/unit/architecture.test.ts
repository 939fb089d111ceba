// The layout's rules (docs/architecture.md), checked on the real import graph by tools we did
// not write: dependency-cruiser over every import (type-only ones included), and the
// TypeScript compiler with the deployed code's configuration.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, test } from 'vitest'

const root = fileURLToPath(new URL('../..', import.meta.url))
const bin = (name: string) => join(root, 'node_modules/.bin', name)

interface Violation {
  rule: { name: string }
  from: string
  to: string
  cycle?: { name: string }[]
}

describe('the import graph', () => {
  test('has no cycles, imports point down the layers, src/ takes nothing from Node or tooling', () => {
    const run = spawnSync(
      bin('depcruise'),
      [
        '--config',
        '.dependency-cruiser.cjs',
        '--output-type',
        'json',
        'src',
        'api',
        'local',
        'scripts',
        'test',
        'examples',
      ],
      { cwd: root, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
    )
    expect(run.error).toBeUndefined()
    const result = JSON.parse(run.stdout) as {
      summary: { violations: Violation[]; totalCruised: number }
    }
    const violations = result.summary.violations.map((v) =>
      v.cycle
        ? `${v.rule.name}: ${v.from} → ${v.cycle.map((c) => c.name).join(' → ')}`
        : `${v.rule.name}: ${v.from} → ${v.to}`,
    )
    expect(violations).toEqual([])
    // The cruise really read the tree (a broken parser would find nothing to refuse).
    expect(result.summary.totalCruised).toBeGreaterThan(150)
  })
})

describe('the deployed code is type-checked without Node', () => {
  const dir = mkdtempSync(join(tmpdir(), 'agent-api-types-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  /** tsc with tsconfig.worker.json's options over one probe file; its diagnostics. */
  function check(source: string): { status: number | null; output: string } {
    writeFileSync(join(dir, 'probe.ts'), source)
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        extends: join(root, 'tsconfig.worker.json'),
        include: [join(dir, 'probe.ts')],
      }),
    )
    const run = spawnSync(bin('tsc'), ['--noEmit', '-p', join(dir, 'tsconfig.json')], {
      encoding: 'utf8',
    })
    return { status: run.status, output: run.stdout + run.stderr }
  }

  test('Buffer and process do not exist there', () => {
    const { status, output } = check(
      "export const bytes = Buffer.from('x')\nexport const env = process.env\n",
    )
    expect(status).not.toBe(0)
    expect(output).toMatch(/Cannot find name 'Buffer'/)
    expect(output).toMatch(/Cannot find name 'process'/)
  })

  test('the Web platform does', () => {
    const { status, output } = check(
      "export const bytes = new TextEncoder().encode('x')\nexport const id = crypto.randomUUID()\nexport const r = new Request('https://x.test')\n",
    )
    expect(output).toBe('')
    expect(status).toBe(0)
  })
})
