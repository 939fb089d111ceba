// GET /health/dashboard: the health report's metrics as a picture. The page holds no data and
// loads nothing from elsewhere: its one script fetches POST /api/v1/agent/health with the
// access token the operator pastes (kept in the page's memory only, never stored) and draws
// the answer with DOM text nodes (no markup from the report is ever parsed).
import { type HtmlPage, htmlPage } from './page.ts'

const SCRIPT = `'use strict'
const $ = (id) => document.getElementById(id)
const el = (tag, text, cls) => { const e = document.createElement(tag); if (text !== undefined && text !== null) e.textContent = String(text); if (cls) e.className = cls; return e }
const ms = (v) => (v === null || v === undefined ? '–' : Math.round(v) + ' ms')
const pct = (v) => (v === null || v === undefined ? '–' : (Math.round(v * 10) / 10) + ' %')
function table(target, head, rows) {
  const t = el('table'); const h = el('tr'); for (const c of head) h.append(el('th', c)); t.append(h)
  for (const r of rows) { const tr = el('tr'); for (const c of r) { const td = el('td'); if (c instanceof Node) td.append(c); else td.textContent = c === null || c === undefined ? '–' : String(c); tr.append(td) } t.append(tr) }
  if (!rows.length) { const tr = el('tr'); const td = el('td', 'none', 'muted'); td.colSpan = head.length; tr.append(td); t.append(tr) }
  $(target).replaceChildren(t)
}
function bar(value, max) { const b = el('div', undefined, 'bar'); b.style.width = (max > 0 && value ? Math.max(1, (100 * value) / max) : 0) + '%'; return b }
function draw(report) {
  const h = report.health; const m = h.metrics
  $('overall').replaceChildren(el('span', report.status, report.status), el('span', ' · ' + report.environment + ' · ' + m.isolate.platform + ' isolate up ' + Math.round(m.isolate.uptime_ms / 1000) + ' s', 'muted'))
  const windows = [['last minute', m.requests.lastMinute], ['last 5 minutes', m.requests.lastFiveMinutes]]
  table('requests', ['window', 'requests', 'errors (5xx)', 'error rate', 'p50', 'p95', 'p99'], windows.map(([n, w]) => [n, w.requests, w.errors, pct(w.errorRate), ms(w.p50), ms(w.p95), ms(w.p99)]))
  const routes = [...m.routes].sort((a, b) => b.lastFiveMinutes.requests - a.lastFiveMinutes.requests)
  const slowest = Math.max(0, ...routes.map((r) => r.lastFiveMinutes.p95 || 0))
  table('routes', ['route', 'requests (5 min)', 'error rate', 'p50', 'p95', 'p99', 'p95, relative'], routes.map((r) => { const w = r.lastFiveMinutes; return [r.route, w.requests, pct(w.errorRate), ms(w.p50), ms(w.p95), ms(w.p99), bar(w.p95, slowest)] }))
  const buffer = m.progress.buffer
  table('buffer', ['depth', 'ready', 'claimed', 'oldest', 'dead letters'], typeof buffer === 'string' ? [[buffer, '', '', '', '']] : [[buffer.depth, buffer.ready, buffer.claimed, ms(buffer.oldest_age_ms), el('span', buffer.dead_letters, buffer.dead_letters > 0 ? 'fail' : 'pass')]])
  const breakers = (h.checks.find((c) => c.name === 'circuit_breakers') || { details: {} }).details
  table('breakers', ['breaker', 'state', 'since', 'open until'], Object.entries(breakers).map(([name, b]) => [name, el('span', b.state, b.state), b.since ? new Date(b.since).toISOString() : null, b.open_until ? new Date(b.open_until).toISOString() : null]))
  table('checks', ['check', 'status', 'duration'], h.checks.map((c) => [c.name, el('span', c.status, c.status), ms(c.duration_ms)]))
  table('alerts', ['severity', 'alert', 'since'], h.alerts.map((a) => [el('span', a.severity, a.severity), a.message, a.since]))
}
let timer
async function load() {
  const token = $('token').value.trim()
  if (!token) { $('state').textContent = 'Paste an access token first.'; return }
  $('state').textContent = 'Fetching the report…'
  try {
    const res = await fetch('/api/v1/agent/health', { method: 'POST', headers: { Authorization: 'Bearer ' + token }, credentials: 'omit', cache: 'no-store' })
    const body = await res.json().catch(() => null)
    if (!res.ok) { $('state').textContent = 'The API answered ' + res.status + (body && body.code ? ' ' + body.code : '') + (body && body.detail ? ': ' + body.detail : ''); return }
    draw(body)
    $('state').textContent = 'Report fetched at ' + new Date().toLocaleTimeString() + ($('auto').checked ? '; refreshing every 15 s' : '')
  } catch (err) { $('state').textContent = 'The report could not be fetched (' + err.name + ')' }
}
$('form').addEventListener('submit', (event) => { event.preventDefault(); load() })
$('auto').addEventListener('change', () => { clearInterval(timer); if ($('auto').checked) timer = setInterval(load, 15000) })
`

const BODY = `<h1>Agent API health</h1>
<p class="muted">The health report (<code>POST /api/v1/agent/health</code>) of the instance that answers, drawn here. This page holds no data: paste an access token (any scope; <code>POST /api/v1/agent/token</code> gives one). It stays in this page's memory only.</p>
<form id="form">
<label for="token">Access token</label>
<textarea id="token" rows="3" autocomplete="off" spellcheck="false"></textarea>
<p><button type="submit">Show the report</button> <label><input type="checkbox" id="auto"> refresh every 15 s</label></p>
</form>
<p id="state" role="status" class="muted"></p>
<h2>Overall</h2><p id="overall" class="muted">–</p>
<h2>Requests</h2><div id="requests"></div>
<h2>Latency and errors per route</h2><div id="routes"></div>
<h2>Progress buffer</h2><div id="buffer"></div>
<h2>Circuit breakers</h2><div id="breakers"></div>
<h2>Checks</h2><div id="checks"></div>
<h2>Alerts</h2><div id="alerts"></div>`

export function dashboardPage(): Promise<HtmlPage> {
  return htmlPage({ title: 'Agent API health', body: BODY, script: SCRIPT })
}
