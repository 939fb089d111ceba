// `npm run test:artifacts`: smoke tests of the deploy artifacts `npm run build` produced,
// in Node (each test file starts the runtime it needs: workerd through Miniflare, or the
// edge-runtime VM). Not part of `npm test`: it needs the build first.
import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    name: 'artifacts',
    root: fileURLToPath(new URL('../..', import.meta.url)),
    environment: 'node',
    include: ['test/artifacts/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 120_000,
  },
})
