import { expect, test } from 'vitest'
import { FaultInjector } from '../../../local/faults.ts'

test('a 50 % error plan fails every other request', () => {
  const faults = new FaultInjector()
  faults.set({ errorRate: 0.5 })
  const kinds = Array.from({ length: 6 }, () => faults.decide().kind)
  expect(kinds).toEqual(['pass', 'error', 'pass', 'error', 'pass', 'error'])
})
