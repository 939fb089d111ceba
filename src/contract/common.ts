// Building blocks shared by the request schemas. zod/mini keeps the worker bundle small
// (several times smaller than classic zod, measured); English messages are configured once,
// here, when the schemas load. Modules import zod itself (`import * as z from 'zod/mini'`):
// re-exporting that namespace object from here would keep the bundler from dropping zod's
// forty other locales (about 250 KiB).
import * as z from 'zod/mini'
import en from 'zod/v4/locales/en.js'

z.config(en())

// Every string a schema accepts is a storable one (src/contract/storable.ts).
export { identifier, storableString as boundedString } from './storable.ts'
