import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';

/**
 * Small server-rendered pages for workspace hosts: refusals and the wake page. They are sent by
 * both front doors (the built-in router and the forward-auth endpoint, whose responses Traefik
 * hands to the browser as they are), so they are self-contained: inline CSS, one inline script
 * allowed by a nonce, nothing fetched from elsewhere.
 */

const escapeHtml = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);

const STYLE = `
  :root { color-scheme: light dark; font-family: system-ui, sans-serif; }
  body { margin: 0; min-height: 100vh; display: grid; place-items: center; background: Canvas; color: CanvasText; }
  main { max-width: 32rem; padding: 2rem; }
  h1 { font-size: 1.4rem; margin: 0 0 .75rem; }
  p { line-height: 1.5; }
  a.button, button { display: inline-block; padding: .6rem 1.2rem; border-radius: .4rem; border: 0; background: #2563eb; color: #fff; font: inherit; text-decoration: none; cursor: pointer; }
  button[disabled] { opacity: .6; cursor: default; }
  progress { width: 100%; height: 1rem; }
  .muted { opacity: .75; font-size: .9rem; }
  .error { color: #dc2626; }
`;

export interface PageOptions {
  title: string;
  message: string;
  link?: { href: string; label: string } | undefined;
}

function pageHtml(title: string, body: string, nonce: string | null): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} · ClawLoops</title><style${nonce ? ` nonce="${nonce}"` : ''}>${STYLE}</style></head>
<body><main>${body}</main></body></html>`;
}

function sendHtml(res: ServerResponse, status: number, html: string, nonce: string | null): void {
  const body = Buffer.from(html);
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.setHeader('Content-Length', body.length);
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader(
    'Content-Security-Policy',
    `default-src 'none'; ${nonce ? `script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; connect-src 'self'` : "style-src 'unsafe-inline'"}; frame-ancestors 'none'; base-uri 'none'; form-action 'self'`,
  );
  res.end(body);
}

/** A page that explains a refusal or a problem in words, with a way forward when there is one. */
export function sendMessagePage(res: ServerResponse, status: number, options: PageOptions): void {
  const link = options.link ? `<p><a class="button" href="${escapeHtml(options.link.href)}">${escapeHtml(options.link.label)}</a></p>` : '';
  sendHtml(res, status, pageHtml(options.title, `<h1>${escapeHtml(options.title)}</h1><p>${escapeHtml(options.message)}</p>${link}`, null), null);
}

export interface WakePageOptions {
  username: string;
  /** Paths of the workspace's reserved endpoints as the browser sees them. */
  statusPath: string;
  startPath: string;
  eventsPath: string;
  platformUrl: string;
  /** Why the workspace is stopped (who or what stopped it, and when), shown before the first status read. */
  reason?: string | null;
}

/**
 * Shown on a workspace host while its runtime is not serving: offers to start it, follows the
 * start's progress over the events stream, and reloads once the runtime is ready. Behind
 * Traefik the route appears a moment after the container is healthy, so a reload may land here
 * again with the runtime already running: the page then retries with a back-off.
 */
export function sendWakePage(res: ServerResponse, options: WakePageOptions): void {
  const nonce = randomBytes(16).toString('base64');
  const config = JSON.stringify({ ...options, reason: undefined }).replace(/</g, '\\u003c');
  const body = `
<h1>Workspace of ${escapeHtml(options.username)}</h1>
<p id="message">Checking your workspace…</p>
<p id="reason" class="muted"${options.reason ? '' : ' hidden'}>${escapeHtml(options.reason ?? '')}</p>
<progress id="progress" max="100" hidden></progress>
<p id="step" class="muted"></p>
<p><button id="start" type="button" hidden>Start workspace</button></p>
<p id="error" class="error" role="alert" hidden></p>
<p class="muted"><a href="${escapeHtml(options.platformUrl)}">Back to the platform</a></p>
<script nonce="${nonce}">
(() => {
  const cfg = ${config};
  const $ = (id) => document.getElementById(id);
  let events = null, reloads = Number(sessionStorage.getItem('clawloops-wake-reloads') || 0);
  const say = (text) => { $('message').textContent = text; };
  const fail = (text) => { $('error').textContent = text; $('error').hidden = !text; };
  const because = (text) => { $('reason').textContent = text || ''; $('reason').hidden = !text; };
  function ready() {
    if (reloads >= 8) { say('Your workspace is running, but its address does not answer yet. Reload this page in a moment.'); return; }
    sessionStorage.setItem('clawloops-wake-reloads', String(reloads + 1));
    say('Your workspace is ready. Opening it…');
    setTimeout(() => location.reload(), Math.min(250 * 2 ** reloads, 4000));
  }
  function render(view) {
    const op = view.operation && (view.operation.status === 'running' || view.operation.status === 'queued') ? view.operation : null;
    if (view.state === 'running' && !op) return ready();
    sessionStorage.removeItem('clawloops-wake-reloads'); reloads = 0;
    if (op || view.state === 'starting') {
      $('start').hidden = true; because('');
      say('Starting your workspace…');
      if (op) { $('progress').hidden = false; $('progress').value = op.percent; $('step').textContent = op.message; }
      follow();
      return;
    }
    $('progress').hidden = true; $('step').textContent = '';
    say(view.state === 'failed' ? 'Your workspace stopped with a problem.' : 'Your workspace is stopped.');
    // A failure is an error; a stop (who or what stopped it, and when) is only information.
    if (view.state === 'failed') { because(''); if (view.stateReason) fail(view.stateReason); }
    else because(view.stateReason);
    $('start').hidden = false; $('start').disabled = false;
  }
  function follow() {
    if (events) return;
    events = new EventSource(cfg.eventsPath);
    events.addEventListener('state', (e) => render(JSON.parse(e.data)));
    events.addEventListener('progress', (e) => {
      const op = JSON.parse(e.data);
      $('progress').hidden = false; $('progress').value = op.percent; $('step').textContent = op.message;
      if (op.status === 'failed') { fail(op.error ? op.error.message : 'The start failed.'); events.close(); events = null; refresh(); }
    });
    events.onerror = () => { events.close(); events = null; setTimeout(refresh, 2000); };
  }
  async function refresh() {
    try {
      const res = await fetch(cfg.statusPath, { credentials: 'same-origin' });
      if (res.status === 401 || res.status === 403) { location.reload(); return; }
      render(await res.json());
    } catch { fail('The platform does not answer. Retrying…'); setTimeout(refresh, 3000); }
  }
  $('start').addEventListener('click', async () => {
    $('start').disabled = true; fail('');
    try {
      const res = await fetch(cfg.startPath, { method: 'POST', credentials: 'same-origin' });
      const data = await res.json().catch(() => null);
      if (!res.ok) { fail((data && data.error && data.error.message) || 'The workspace could not be started.'); $('start').disabled = false; return; }
      $('start').hidden = true; because('');
      say('Starting your workspace…');
      if (data.operation) { $('progress').hidden = false; $('progress').value = data.operation.percent; $('step').textContent = data.operation.message; }
      follow();
    } catch { fail('The platform does not answer.'); $('start').disabled = false; }
  });
  refresh();
})();
</script>`;
  sendHtml(res, 503, pageHtml(`Workspace of ${options.username}`, body, nonce), nonce);
}
