// The Vercel artifact: the edge function `vercel build` emitted (.vercel/output/functions/…),
// bundled by the build as Vercel bundles it on deploy, evaluated in the edge-runtime VM
// (Vercel's Edge Runtime). Vercel hands an edge function no env object: it reads
// `process.env`, which the VM is given here with the deployment's variables.
import { readFile } from 'node:fs/promises'
import { EdgeRuntime } from 'edge-runtime'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { at } from '../../local/artifact-layout.ts'
import { type Send, smokeTests, useLocalStack } from './support.ts'

type Handler = (
  request: Request,
  context: { waitUntil(promise: Promise<unknown>): void },
) => Promise<Response>

describe('Vercel edge function (.vercel/output)', () => {
  const stack = useLocalStack()
  let send: Send | undefined
  let runtime: EdgeRuntime | undefined
  const background: Promise<unknown>[] = []

  beforeAll(async () => {
    const { manifest, env } = stack()
    const { bundle, function: fn } = manifest.vercel
    expect(fn.runtime).toBe('edge')
    const vm = new EdgeRuntime({
      initialCode: await readFile(at(bundle.path), 'utf8'),
      extend: (context) => Object.assign(context, { process: { env: { ...env } } }),
    })
    runtime = vm
    const handler = vm.evaluate<Handler>(`globalThis.${bundle.global}.default`)
    send = async (path, init) => {
      // Requests are made with the VM's own Request, as the platform would.
      const request = new vm.context.Request(`https://agent-api.test${path}`, init)
      return handler(request as unknown as Request, { waitUntil: (p) => void background.push(p) })
    }
  })
  afterEach(async () => {
    // Background work (waitUntil) finishes before the stand-ins go away.
    for (let seen = 0; seen < background.length; seen = background.length) {
      await Promise.allSettled(background.slice(seen))
    }
  })

  it('runs in the edge VM, not in Node', () => {
    expect(runtime!.evaluate('typeof EdgeRuntime')).toBe('string')
    expect(runtime!.evaluate('typeof require')).toBe('undefined')
  })

  smokeTests(() => send!, stack)
})
