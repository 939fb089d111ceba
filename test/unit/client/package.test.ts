// The SDK is importable as the package's subpath `agent-api/client` (package.json `exports`),
// with its types, and is the very module in src/client/.

import * as sdk from 'agent-api/client'
import { describe, expect, expectTypeOf, test } from 'vitest'
import * as source from '../../../src/client/index.ts'

describe('agent-api/client', () => {
  test('resolves to src/client/index.ts, types included', () => {
    expect(sdk.createAgentClient).toBe(source.createAgentClient)
    expect(sdk.AgentApiError).toBe(source.AgentApiError)
    expectTypeOf(sdk.createAgentClient).toEqualTypeOf(source.createAgentClient)
  })
})
