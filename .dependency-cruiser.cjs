// The import graph's rules (docs/architecture.md): no cycles, type-only imports included; each
// layer imports only the layers below it; src/ (what deploys) imports no Node module and none
// of the Node-only tooling; the SDK stands apart. test/unit/architecture.test.ts runs it.
//
// TypeScript 7 has no compiler API for dependency-cruiser to use, so it parses with swc;
// `tsPreCompilationDeps` keeps the imports TypeScript would erase (type-only ones).

/** Top to bottom: a module may import its own layer and those below it, never one above. */
const LAYERS = [
  { name: 'entries', path: '^(api/|src/(worker|vercel|jobs)\\.ts$)' },
  { name: 'app', path: '^src/app\\.ts$' },
  { name: 'routes', path: '^src/(routes|mcp)/' },
  { name: 'openapi', path: '^src/openapi/' },
  { name: 'http', path: '^src/http/' },
  { name: 'services', path: '^src/services\\.ts$' },
  { name: 'domain', path: '^src/(auth|users|progress|health)/' },
  { name: 'infrastructure', path: '^src/((db|resilience|cache|ratelimit|config)/|redis\\.ts$)' },
  { name: 'contract', path: '^src/contract/' },
  { name: 'kernel', path: '^src/kernel/' },
]

const upward = LAYERS.slice(1).map((layer, i) => ({
  name: `${layer.name}-imports-no-layer-above`,
  comment: `${layer.name} may import only the layers below it`,
  severity: 'error',
  from: { path: layer.path },
  to: {
    path: LAYERS.slice(0, i + 1)
      .map((l) => `(${l.path})`)
      .join('|'),
  },
}))

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'no cycles, type-only imports included',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    ...upward,
    {
      name: 'deployed-code-imports-no-node',
      comment: 'src/ runs in workerd and the edge VM: no node: modules',
      severity: 'error',
      from: { path: '^(src|api)/' },
      to: { dependencyTypes: ['core'] },
    },
    {
      name: 'deployed-code-imports-no-tooling',
      comment: 'src/ is what deploys: nothing from local/, scripts/, test/ or examples/',
      severity: 'error',
      from: { path: '^(src|api)/' },
      to: { path: '^(local|scripts|test|examples)/' },
    },
    {
      name: 'sdk-stands-apart',
      comment: 'src/client/ imports only its own modules, contract types and the kernel',
      severity: 'error',
      from: { path: '^src/client/' },
      to: { path: '^src/', pathNot: '^src/(client|contract|kernel)/' },
    },
    {
      name: 'sdk-takes-only-types-from-the-contract',
      comment: 'the SDK carries no zod: its contract imports are type-only',
      severity: 'error',
      from: { path: '^src/client/' },
      to: { path: '^src/contract/', dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'nothing-imports-the-sdk',
      comment: 'the server does not depend on its client',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/client/' },
      to: { path: '^src/client/' },
    },
    {
      name: 'tests-import-no-scripts',
      comment: 'scripts are run, never imported as libraries; shared tooling lives in local/',
      severity: 'error',
      from: { path: '^(test|local)/' },
      to: { path: '^scripts/' },
    },
    {
      name: 'tooling-imports-no-tests',
      comment: 'scripts and local/ never import test code',
      severity: 'error',
      from: { path: '^(scripts|local)/' },
      to: { path: '^test/' },
    },
  ],
  options: {
    parser: 'swc',
    tsPreCompilationDeps: true,
    doNotFollow: { path: 'node_modules' },
    exclude: { path: 'node_modules' },
    tsConfig: { fileName: 'tsconfig.json' },
  },
}
