// Vercel Edge Function entry; vercel.json rewrites every path here.
import { createVercelHandler } from '../src/vercel.ts'

export const config = { runtime: 'edge' }

export default createVercelHandler()
