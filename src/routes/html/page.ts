// The few HTML pages the API serves (/, /problems/<code>, /health/dashboard) share this frame:
// no external file, one inline stylesheet and at most one inline script, each allowed by its
// hash in the page's own Content-Security-Policy, so nothing else can run or load. Loaded with
// a dynamic import by the routes: the REST path never evaluates it.

const STYLE = `body{font:16px/1.5 system-ui,sans-serif;max-width:64rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b;background:#fff}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem}a{color:#0b57d0}code{background:#f2f2f2;padding:0 .25em;border-radius:3px}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}th,td{text-align:left;padding:.3rem .6rem;border-bottom:1px solid #ddd}
.muted{color:#666}.pass,.healthy,.CLOSED{color:#137333}.warn,.degraded,.HALF_OPEN,.warning{color:#a15c00}.fail,.unhealthy,.OPEN,.critical{color:#b3261e}
.bar{height:.6rem;background:#0b57d0;border-radius:2px;min-width:1px}textarea{width:100%;font:13px monospace}`

/** Text for HTML element content or a quoted attribute value. */
export function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[ch]!,
  )
}

/** Markdown's `code` spans (as the catalogue's descriptions use them), escaped. */
export function inlineCode(text: string): string {
  return escapeHtml(text).replace(/`([^`]+)`/g, '<code>$1</code>')
}

async function sha256(text: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text))
  return `'sha256-${btoa(String.fromCharCode(...new Uint8Array(digest)))}'`
}

export interface HtmlPage {
  /** The document: `html`, with its policy in `csp`. */
  html: string
  csp: string
}

/**
 * A complete page around `body` (trusted HTML: callers escape what they insert). `script` is
 * inline JavaScript; `connect` lets it fetch from this origin.
 */
export async function htmlPage(page: {
  title: string
  body: string
  script?: string
}): Promise<HtmlPage> {
  const policy = [
    "default-src 'none'",
    `style-src ${await sha256(STYLE)}`,
    ...(page.script ? [`script-src ${await sha256(page.script)}`, "connect-src 'self'"] : []),
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ]
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(page.title)}</title>
<style>${STYLE}</style>
</head>
<body>
${page.body}
${page.script ? `<script>${page.script}</script>\n` : ''}</body>
</html>
`
  return { html, csp: policy.join('; ') }
}
