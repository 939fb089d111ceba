import { cloudflareTest } from '@cloudflare/vitest-plugin'
import { defineConfig } from 'vitest/config'
import { filterPoolNoise } from './test/support/pool-noise.ts'

// workerd's logs of the fault tests' dropped connections, and the like: see the causes there.
filterPoolNoise()

// Tests by kind (docs/architecture.md "Tests"):
//   unit         pure logic in Node, no store (and the checks over the repository itself)
//   integration  the real stores behind the stand-ins, driven from Node
//   workers      the scenarios in workerd, and what only workerd can show
//   edge         the same scenarios in Vercel's edge VM
//   e2e          the example agent and `npm run dev`, as a developer runs them
// Built artifacts have their own config (test/artifacts/vitest.config.ts, after `npm run build`).
//
// Scenario tests are written once and run in both runtimes; `#runtime` resolves to the
// runtime's own way of dispatching a request to the deployed entry.
const scenarios = ['test/scenarios/**/*.test.ts']
// Each project that needs it starts its own local stack (stand-ins + control server).
const stackSetup = 'test/support/global-setup.ts'
const runtimeModule = (name: string) => ({
  '#runtime': new URL(`./test/support/runtime-${name}.ts`, import.meta.url).pathname,
})

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          environment: 'node',
          // Two cores shared by several projects: allow for a busy machine.
          testTimeout: 20_000,
          include: ['test/unit/**/*.test.ts'],
        },
      },
      {
        // Real stores behind the stand-ins, driven from Node: properties over the whole path,
        // the buffer's scripts, the stand-ins themselves, the operator CLI. Requests go through
        // the Vercel entry.
        resolve: { alias: runtimeModule('edge') },
        test: {
          name: 'integration',
          environment: 'node',
          testTimeout: 60_000,
          globalSetup: [stackSetup],
          include: ['test/integration/**/*.test.ts'],
        },
      },
      {
        // The sources, not wrangler.toml's `main` (the deploy build's output in dist/worker/).
        plugins: [
          cloudflareTest({ main: './src/worker.ts', wrangler: { configPath: './wrangler.toml' } }),
        ],
        resolve: { alias: runtimeModule('workers') },
        test: {
          name: 'workers',
          testTimeout: 20_000,
          globalSetup: [stackSetup],
          include: [...scenarios, 'test/workers/**/*.test.ts'],
        },
      },
      {
        resolve: { alias: runtimeModule('edge') },
        test: {
          name: 'edge',
          testTimeout: 20_000,
          globalSetup: [stackSetup],
          environment: 'edge-runtime',
          include: scenarios,
        },
      },
      {
        // Whole programs, spawned or served as a developer runs them; each starts what it needs.
        test: {
          name: 'e2e',
          environment: 'node',
          testTimeout: 60_000,
          include: ['test/e2e/**/*.test.ts'],
        },
      },
    ],
  },
})
