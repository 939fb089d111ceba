// The platforms' size limits the deploy artifacts are checked against (`npm run build` fails
// when one is exceeded). Each names its source; the plan asserted is the smallest one.

const KiB = 1024
const MiB = 1024 * KiB

export interface SizeLimit {
  name: string
  gzipBytes: number
  source: string
}

/**
 * Cloudflare Workers, Worker size after compression: 3 MiB on Workers Free, 10 MiB on
 * Workers Paid. https://developers.cloudflare.com/workers/platform/limits/#worker-size
 * (wrangler reports the gzip size of the uploaded modules and refuses more than 3 MiB on Free).
 */
export const CLOUDFLARE_WORKER_FREE: SizeLimit = {
  name: 'Cloudflare Workers Free: 3 MiB gzipped',
  gzipBytes: 3 * MiB,
  source: 'https://developers.cloudflare.com/workers/platform/limits/#worker-size',
}
export const CLOUDFLARE_WORKER_PAID: SizeLimit = {
  name: 'Cloudflare Workers Paid: 10 MiB gzipped',
  gzipBytes: 10 * MiB,
  source: 'https://developers.cloudflare.com/workers/platform/limits/#worker-size',
}
/** Wrangler's own cap on the uncompressed upload (MAX_UNCOMPRESSED_SIZE_BYTES in wrangler 4). */
export const CLOUDFLARE_WORKER_UNCOMPRESSED_BYTES = 64 * MiB

/**
 * Vercel, Edge runtime function size after gzip: Hobby 1 MB, Pro 2 MB, Enterprise 4 MB
 * ("Size (after gzip compression)" in https://vercel.com/docs/functions/limitations).
 * Vercel writes "MB" without saying which; 1 MB is taken as 1,000,000 bytes, the stricter
 * reading.
 */
export const VERCEL_EDGE_HOBBY: SizeLimit = {
  name: 'Vercel Edge Functions Hobby: 1 MB gzipped',
  gzipBytes: 1_000_000,
  source: 'https://vercel.com/docs/functions/limitations',
}
export const VERCEL_EDGE_PRO: SizeLimit = {
  name: 'Vercel Edge Functions Pro: 2 MB gzipped',
  gzipBytes: 2_000_000,
  source: 'https://vercel.com/docs/functions/limitations',
}

export function formatBytes(bytes: number): string {
  if (bytes >= MiB) return `${(bytes / MiB).toFixed(2)} MiB`
  if (bytes >= KiB) return `${(bytes / KiB).toFixed(1)} KiB`
  return `${bytes} B`
}
