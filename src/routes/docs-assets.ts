// Swagger UI's files, served by the deployment itself, never by the worker: its script is
// ten times the worker's size. They are static assets — Cloudflare's `[assets]` directory and
// Vercel's output directory are both public/ — copied there from the pinned swagger-ui-dist
// (a dev dependency) by local/static-assets.ts before a build, `npm run dev` or a test
// serves them. The integrity values are of the files npm publishes; the copy step checks
// them, and the page asks the browser to check them again (subresource integrity).

export const SWAGGER_UI_VERSION = '5.35.0'

/** Where the files are served: versioned, so a new version never meets a cached old file. */
export const SWAGGER_UI_PATH = `/assets/swagger-ui-${SWAGGER_UI_VERSION}`

export const SWAGGER_UI_FILES = {
  script: {
    file: 'swagger-ui-bundle.js',
    integrity: 'sha384-gjRm0bEPMeTmMh5jT2cHccIwCUZSTd8YC+j0d0sXw0MdGEfScduGpSyF3ZSSLkX9',
  },
  style: {
    file: 'swagger-ui.css',
    integrity: 'sha384-WlYgdmXYOOBWL5apwjDEZwN+U3HmXSSu5R6V5aGxEcf7z+KuRNwBhoxKVN1i3D5I',
  },
} as const
