// Building blocks shared by the request and response schemas. zod/mini keeps the worker bundle small
// (several times smaller than classic zod, measured); English messages are configured once,
// here, when the schemas load. Modules import zod itself (`import * as z from 'zod/mini'`):
// re-exporting that namespace object from here would keep the bundler from dropping zod's
// forty other locales (about 250 KiB).
import * as z from 'zod/mini'
import en from 'zod/v4/locales/en.js'

z.config(en())

// Every string a schema accepts is a storable one (src/contract/storable.ts).
export { identifier, storableString as boundedString } from './storable.ts'

/** The deployment environments (CONTRACT.md "Environments"), in the order of trust. */
export const ENVIRONMENTS = ['development', 'staging', 'production'] as const
export type Environment = (typeof ENVIRONMENTS)[number]

/**
 * A schema built on its first use. The answers' schemas and the documented headers only
 * describe (the OpenAPI document, the tests' contract check): no request path validates with
 * them, so no isolate pays for building them at start-up.
 */
export function onFirstUse<S>(build: () => S): () => S {
  let schema: S | undefined
  return () => {
    schema ??= build()
    return schema
  }
}

/** A count: a non-negative integer. */
export const count = () => z.number().check(z.int(), z.minimum(0))
/** An RFC 3339 instant, as the API writes them (`toISOString()`). */
export const instant = () => z.iso.datetime()
/** Free-form JSON members. */
export const jsonObject = () => z.record(z.string(), z.unknown())

/** Request bodies over this many bytes are refused (413) before any route runs. */
export const MAX_BODY_BYTES = 64 * 1024
