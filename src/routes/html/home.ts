// GET / for a browser: the index's links as a page.
import { escapeHtml, type HtmlPage, htmlPage } from './page.ts'

export function homePage(index: {
  name: string
  version: string
  links: readonly { rel: string; href: string; title: string }[]
}): Promise<HtmlPage> {
  const items = index.links
    .map(
      (link) =>
        `<li><a href="${escapeHtml(link.href)}">${escapeHtml(link.title)}</a> <span class="muted"><code>${escapeHtml(link.href)}</code></span></li>`,
    )
    .join('\n')
  return htmlPage({
    title: index.name,
    body: `<h1>${escapeHtml(index.name)}</h1>
<p class="muted">Version ${escapeHtml(index.version)}. Short-lived tokens, user context and progress reporting for AI agents. This index is also JSON (<code>Accept: application/json</code>).</p>
<ul>
${items}
</ul>`,
  })
}
