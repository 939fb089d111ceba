// The RFC 9457 problem body every error has (see src/problem.ts for the producer).
export type { FieldError, ProblemBody } from '../problem.ts'
