// The request and response schemas (zod) and the types derived from them, shared by the
// routes, the SDK (type-only) and the OpenAPI document.
export * from './context.ts'
export * from './health.ts'
export type { FieldError, ProblemBody } from './problem.ts'
export { fieldError, problem } from './problem-schema.ts'
export * from './progress.ts'
export * from './token.ts'
export * from './users.ts'
