// The contract between scenario tests and a runtime: send one request to the deployed entry
// and learn when its background work (waitUntil) has finished. `#runtime` resolves to
// runtime-workers.ts or runtime-edge.ts per vitest project (tsconfig maps it to the edge one).
export type Dispatch = (
  request: Request,
  env: Record<string, string>,
) => Promise<{ response: Response; settled: Promise<unknown> }>
