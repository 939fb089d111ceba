// What the Workers bundle has in place of `ajv` and `ajv-formats` (the alias in
// local/worker-build.ts).
// The MCP SDK's server imports ajv statically for its default JSON Schema validator, which
// workerd cannot run (ajv compiles schemas with `new Function`); our server always passes the
// cfworker validator (./server.ts), so ajv is never constructed — and 131 KiB of it need not be
// uploaded and parsed at every start-up. Should anything ever construct it, it says why.
export default function ajvIsNotBundled(): never {
  throw new Error(
    'ajv is not in this bundle: workerd refuses new Function; use the cfworker validator',
  )
}
