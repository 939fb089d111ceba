// Loss-tolerant rotation as a property over schedules, against the real Postgres (the
// database's refresh_token_rotate decides every transition): an honest client that uses its
// refresh token, loses answers, retries and sends twice at once is never revoked; a use of a
// token after its successor's first use — a stolen token — always revokes the family.
import fc from 'fast-check'
import { describe, expect, test } from 'vitest'
import {
  issueRefreshToken,
  type RotationResult,
  rotateRefreshToken,
} from '../../src/auth/refresh-token.ts'
import type { Database } from '../../src/db/client.ts'
import { integrationScenario } from './support.ts'

const sc = await integrationScenario()
const db = sc.services().db as Database
const AGENT = 'demo-agent'
const ENV = 'development'

type Step =
  | { kind: 'use' }
  | { kind: 'lose' }
  | { kind: 'retry' }
  | { kind: 'concurrent'; keepFirst: boolean }
  | { kind: 'stolen'; back: number }

const honest: fc.Arbitrary<Step> = fc.oneof(
  fc.constant<Step>({ kind: 'use' }),
  fc.constant<Step>({ kind: 'lose' }),
  fc.constant<Step>({ kind: 'retry' }),
  fc.record({ kind: fc.constant('concurrent' as const), keepFirst: fc.boolean() }),
)

const rotate = (token: string, graceSeconds = 60): Promise<RotationResult> =>
  rotateRefreshToken(db, token, {
    environment: ENV,
    ttlSeconds: 3600,
    graceSeconds,
    clientId: AGENT,
  })

const next = (r: RotationResult): string => {
  if (!r.ok) throw new Error(`an honest use was refused: ${r.reason}`)
  return r.refresh.token
}

/** Runs `steps` as an honest client would; returns whether the family ended revoked. */
async function run(steps: Step[]): Promise<{ revoked: boolean; stolenAt?: number }> {
  const issued = await issueRefreshToken(db, {
    agentId: AGENT,
    scope: 'context:read',
    environment: ENV,
    ttlSeconds: 3600,
  })
  let current = issued!.refresh.token
  // Tokens the client held, in order; the newest is `current`.
  const held = [current]
  for (const [i, step] of steps.entries()) {
    switch (step.kind) {
      case 'use':
        current = next(await rotate(current))
        held.push(current)
        break
      case 'lose':
        next(await rotate(current)) // the answer never reaches the client
        break
      case 'retry':
        next(await rotate(current)) // lost …
        current = next(await rotate(current)) // … and sent again
        held.push(current)
        break
      case 'concurrent': {
        const [a, b] = await Promise.all([rotate(current), rotate(current)])
        // Both answer; the client keeps whichever arrived last.
        current = step.keepFirst ? next(a) : next(b)
        held.push(current)
        break
      }
      case 'stolen': {
        // A token whose successor the client has since used: held[k + 1] was presented to
        // get a later token (held[k + 2] at the latest, `current`).
        const k = held.length - 3 - step.back
        if (k < 0) break
        const stolen = await rotate(held[k]!)
        expect(stolen).toMatchObject({ ok: false, reason: 'reused' })
        const after = await rotate(current)
        return { revoked: !after.ok, stolenAt: i }
      }
    }
  }
  // The client's token still works: nothing was revoked.
  const last = await rotate(current)
  return { revoked: !last.ok }
}

describe('loss-tolerant rotation (real Postgres)', () => {
  test('no honest schedule revokes', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(honest, { minLength: 1, maxLength: 8 }), async (steps) => {
        expect((await run(steps)).revoked).toBe(false)
      }),
      { numRuns: 60 },
    )
  })

  test('any use of a token after its successor’s first use revokes the family', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(honest, { minLength: 2, maxLength: 6 }),
        fc.nat({ max: 3 }),
        async (steps, back) => {
          const outcome = await run([...steps, { kind: 'stolen', back }])
          if (outcome.stolenAt !== undefined) expect(outcome.revoked).toBe(true)
        },
      ),
      { numRuns: 60 },
    )
  })

  test('without a grace period, a retry of a lost answer is reuse', async () => {
    const issued = await issueRefreshToken(db, {
      agentId: AGENT,
      scope: 'context:read',
      environment: ENV,
      ttlSeconds: 3600,
    })
    const token = issued!.refresh.token
    expect((await rotate(token, 0)).ok).toBe(true)
    expect(await rotate(token, 0)).toMatchObject({ ok: false, reason: 'reused' })
  })
})
