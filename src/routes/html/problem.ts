// GET /problems/<code>: what a problem type means (RFC 9457 §3.1.1: the type URI documents
// the problem), from the catalogue every answer's `code` comes from.
import type { ProblemType } from '../../contract/problems.ts'
import { escapeHtml, type HtmlPage, htmlPage, inlineCode } from './page.ts'

export function problemPage(type: ProblemType): Promise<HtmlPage> {
  const oauth = type.oauth
    ? `<p>On the token endpoints the answer is <code>application/json</code> and also carries OAuth's <code>error</code> (= <code>${escapeHtml(type.code)}</code>) and <code>error_description</code> (RFC 6749 §5.2).</p>`
    : ''
  return htmlPage({
    title: `Problem: ${type.code}`,
    body: `<h1>Problem <code>${escapeHtml(type.code)}</code></h1>
<p>HTTP status <strong>${type.status}</strong>.</p>
<p>${inlineCode(type.description)}</p>
${oauth}<p class="muted">Answered as RFC 9457 problem details: <code>type</code> is this page's path, <code>code</code> is <code>${escapeHtml(type.code)}</code>, <code>request_id</code> finds the answer's log line. The <a href="/docs">reference</a> lists which operations answer it.</p>`,
  })
}
