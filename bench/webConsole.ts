/**
 * The web console in a real browser (Debian's chromium through playwright-core) against the
 * production server (startServer) and the real Docker engine with the stand-in runtime image.
 *
 *   part "load": a signed-in member opens the console with an empty cache, BENCH_LOADS times
 *   (10), each in a fresh browser context:
 *     - bytes on the wire for the initial route (each response's transferred body, as the browser
 *       reports it), JavaScript separately, next to its uncompressed size (target: ≤ 300 KiB of
 *       gzipped JavaScript); the admin pages must not be among them (they are a lazy chunk)
 *     - when the page is usable: navigation start → the workspace card shows the runtime's state
 *       (the first answer of its event stream has been rendered), p50, next to the baseline of
 *       the same page's HTML document alone (responseEnd) in the same loads; long tasks (> 50 ms)
 *       during the load
 *   part "drop": the member drops a folder of BENCH_DROP_FILES (200) files of 1–16 KiB on the
 *   Files page (a real drop: CDP Input.dispatchDragEvent with the folder's path, as the OS would
 *   deliver it) and the transfer panel runs until every row says done:
 *     - the longest main-thread task during it (PerformanceObserver "longtask"; target: none over
 *       200 ms) and the number of rows shown (must be all of them)
 *     - time until all are done, next to the baseline: the same files sent by Node straight to the
 *       upload API in the same batches (one multipart request with a manifest per 50 files)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS } from '../test/support/browser';
import { benchInstance, fmt, knob, machineNote, p50, percentile, ratio, startBenchPlatform, STANDIN_IMAGE, sweep, table, type BenchPlatform, type Member } from './support';

const LOADS = Math.round(knob('BENCH_LOADS', 10));
const DROP_FILES = Math.round(knob('BENCH_DROP_FILES', 200));
const BATCH = 50;

async function memberContext(browser: Browser, bench: BenchPlatform, member: Member): Promise<BrowserContext> {
  // The console's CSP forbids eval, which waitForFunction with a string needs: measuring only.
  const context = await browser.newContext({ bypassCSP: true });
  const [name, value] = member.cookie.split('=') as [string, string];
  await context.addCookies([{ name, value, url: bench.origin }]);
  return context;
}

interface LoadSample {
  jsBytes: number;
  jsUncompressed: number;
  allBytes: number;
  requests: string[];
  documentMs: number;
  usableMs: number;
  longTasks: number[];
}

const OBSERVE = `
  window.__longTasks = [];
  new PerformanceObserver((list) => { for (const e of list.getEntries()) window.__longTasks.push(e.duration); }).observe({ type: 'longtask', buffered: true });
  new MutationObserver(() => {
    if (window.__usable === undefined && document.querySelector('.runtime-card .badge')) window.__usable = performance.now();
  }).observe(document, { subtree: true, childList: true });
`;

async function loadOnce(browser: Browser, bench: BenchPlatform, member: Member): Promise<LoadSample> {
  const context = await memberContext(browser, bench, member);
  const page = await context.newPage();
  await page.addInitScript(OBSERVE);
  const responses: Promise<{ url: string; type: string; transferred: number; size: number }>[] = [];
  page.on('requestfinished', (request) => {
    responses.push(
      (async () => {
        const sizes = await request.sizes();
        const response = await request.response();
        const body = (await response?.body().catch(() => Buffer.alloc(0))) ?? Buffer.alloc(0);
        return { url: request.url(), type: request.resourceType(), transferred: sizes.responseBodySize, size: body.length };
      })(),
    );
  });
  await page.goto(`${bench.origin}/`);
  await page.waitForFunction('window.__usable !== undefined', undefined, { timeout: 30_000 }).catch(async (err: Error) => {
    throw new Error(`${err.message}\npage at ${page.url()}: ${((await page.textContent('body').catch(() => '')) ?? '').slice(0, 300)}`);
  });
  const timing = (await page.evaluate(`({ usable: window.__usable, document: performance.getEntriesByType('navigation')[0].responseEnd, longTasks: window.__longTasks })`)) as {
    usable: number;
    document: number;
    longTasks: number[];
  };
  const done = await Promise.all(responses);
  await context.close();
  const scripts = done.filter((r) => r.type === 'script');
  return {
    jsBytes: scripts.reduce((a, r) => a + r.transferred, 0),
    jsUncompressed: scripts.reduce((a, r) => a + r.size, 0),
    allBytes: done.reduce((a, r) => a + r.transferred, 0),
    requests: done.map((r) => new URL(r.url).pathname),
    documentMs: timing.document,
    usableMs: timing.usable,
    longTasks: timing.longTasks,
  };
}

async function loadPart(browser: Browser, bench: BenchPlatform, member: Member, summary: string[]): Promise<void> {
  console.log(`\n## First load of the console, signed in, empty cache, ${LOADS} loads (${await machineNote()})\n`);
  await loadOnce(browser, bench, member); // warm the server, not the browser (each load has its own context)
  const samples: LoadSample[] = [];
  for (let i = 0; i < LOADS; i++) samples.push(await loadOnce(browser, bench, member));
  const first = samples[0]!;
  const admin = first.requests.filter((p) => /Admin/i.test(p));
  if (admin.length > 0) throw new Error(`the admin pages were loaded for a member: ${admin.join(', ')}`);
  const kib = (b: number) => `${(b / 1024).toFixed(1)} KiB`;
  const usable = samples.map((s) => s.usableMs);
  const documents = samples.map((s) => s.documentMs);
  const longest = Math.max(0, ...samples.flatMap((s) => s.longTasks));
  console.log(
    table([
      ['measure', 'value', 'baseline / target', 'ratio'],
      ['JavaScript on the wire (gzip)', kib(first.jsBytes), 'target 300 KiB', ratio(first.jsBytes, 300 * 1024)],
      ['JavaScript uncompressed', kib(first.jsUncompressed), '', ''],
      ['everything on the wire (HTML, CSS, JS, API answers)', kib(first.allBytes), '', ''],
      ['requests', String(first.requests.length), first.requests.join(' '), ''],
      ['usable: the runtime card shows its state, p50 / p95', `${fmt(p50(usable))} / ${fmt(percentile(usable, 95))}`, `HTML document alone p50 ${fmt(p50(documents))}`, ratio(p50(usable), p50(documents))],
      ['longest main-thread task during a load', fmt(longest), '', ''],
    ]),
  );
  summary.push(
    `first load: ${kib(first.jsBytes)} of gzipped JavaScript (target ≤ 300 KiB: ${first.jsBytes <= 300 * 1024 ? 'MET' : 'MISSED'}; ${kib(first.jsUncompressed)} uncompressed, admin pages not loaded), usable after ${fmt(p50(usable))} p50 (the HTML alone ${fmt(p50(documents))}), longest task ${fmt(longest)}`,
  );
}

async function dropPart(browser: Browser, bench: BenchPlatform, member: Member, summary: string[]): Promise<void> {
  console.log(`\n## ${DROP_FILES} files dropped as a folder on the Files page (${await machineNote()})\n`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clawloops-drop-'));
  const folder = path.join(dir, 'dropped');
  fs.mkdirSync(folder);
  const files: { name: string; bytes: Buffer }[] = [];
  for (let i = 0; i < DROP_FILES; i++) {
    const bytes = Buffer.alloc(1024 * (1 + (i % 16)), i % 251);
    const name = `file-${String(i).padStart(3, '0')}.txt`;
    fs.writeFileSync(path.join(folder, name), bytes);
    files.push({ name, bytes });
  }
  try {
    // Baseline: the same files, straight to the API from Node, in the same batches.
    const apiStart = performance.now();
    for (let i = 0; i < files.length; i += BATCH) {
      const batch = files.slice(i, i + BATCH);
      const form = new FormData();
      form.append('manifest', JSON.stringify(batch.map((f) => ({ path: `api-dropped/${f.name}`, size: f.bytes.length }))));
      for (const f of batch) form.append('files', new Blob([f.bytes]), `api-dropped/${f.name}`);
      const res = await fetch(`${bench.baseUrl}/api/v1/files/upload?path=`, { method: 'POST', headers: { cookie: member.cookie, origin: bench.origin }, body: form });
      if (res.status !== 201) throw new Error(`API upload: ${res.status} ${await res.text()}`);
    }
    const apiMs = performance.now() - apiStart;

    const context = await memberContext(browser, bench, member);
    const page = await context.newPage();
    await page.addInitScript(OBSERVE);
    await page.goto(`${bench.origin}/files`);
    // The listing has loaded, so the page's drop listeners are in place.
    await page.locator('[data-testid=file-row]').first().waitFor();
    const box = await page.locator('#dropzone').boundingBox();
    if (!box) throw new Error('no drop zone');
    const cdp = await context.newCDPSession(page);
    const at = { x: Math.round(box.x + box.width / 2), y: Math.round(box.y + Math.min(box.height / 2, 200)) };
    const data = { items: [], files: [folder], dragOperationsMask: 1 };
    const started = performance.now();
    for (const type of ['dragEnter', 'dragOver', 'drop'] as const) await cdp.send('Input.dispatchDragEvent', { type, ...at, data });
    await page.waitForFunction(`document.querySelectorAll('#transfers [data-testid=transfer-row]').length === ${DROP_FILES}`, undefined, { timeout: 30_000 });
    await page.waitForFunction(`[...document.querySelectorAll('#transfers [data-testid=transfer-row]')].every((r) => r.dataset.state === 'done' || r.dataset.state === 'failed')`, undefined, {
      timeout: 120_000,
    });
    const browserMs = performance.now() - started;
    const rows = (await page.evaluate(`[...document.querySelectorAll('#transfers [data-testid=transfer-row]')].map((r) => r.dataset.state)`)) as string[];
    const longTasks = (await page.evaluate('window.__longTasks')) as number[];
    await context.close();
    const failed = rows.filter((s) => s !== 'done').length;
    if (failed > 0) throw new Error(`${failed} of ${rows.length} dropped files did not upload`);
    const longest = Math.max(0, ...longTasks);
    console.log(
      table([
        ['measure', 'browser (drop)', 'baseline: Node → API, same batches', 'ratio'],
        ['all files uploaded', fmt(browserMs), fmt(apiMs), ratio(browserMs, apiMs)],
        ['progress rows shown', `${rows.length} of ${DROP_FILES}`, '', ''],
        ['longest main-thread task (target ≤ 200 ms)', fmt(longest), '', ''],
        ['tasks over 50 ms', String(longTasks.length), '', ''],
      ]),
    );
    summary.push(
      `drop of ${DROP_FILES} files: ${rows.length} progress rows, longest main-thread task ${fmt(longest)} (target ≤ 200 ms: ${longest <= 200 ? 'MET' : 'MISSED'}), done in ${fmt(browserMs)} vs ${fmt(apiMs)} for Node straight to the API (${ratio(browserMs, apiMs)}×)`,
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const parts = process.argv.slice(2);
  const instance = benchInstance();
  const bench = await startBenchPlatform({ instance, publicHost: 'localhost', runtimeSettings: { image: STANDIN_IMAGE }, webRoot: path.resolve(__dirname, '..', 'web', 'dist') });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  const summary: string[] = [];
  try {
    const member = await bench.newMember('webbench');
    const started = await bench.operate(member, 'start');
    if (started.status !== 'succeeded') throw new Error(`the member's runtime did not start: ${JSON.stringify(started)}`);
    if (parts.includes('load')) await loadPart(browser, bench, member, summary);
    if (parts.includes('drop')) await dropPart(browser, bench, member, summary);
    console.log(`\n## Summary\n\n${summary.join('\n')}`);
  } catch (err) {
    console.error(`bench failed: ${(err as Error).stack}\n--- platform log\n${bench.logText()}`);
    process.exitCode = 1;
  } finally {
    await browser.close();
    await bench.close();
    await sweep(instance);
  }
}

void main();
