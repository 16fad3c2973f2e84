/**
 * The admin's runtime list (GET /api/v1/admin/runtimes) with BENCH_RUNTIMES (200) running
 * runtimes: the old way, one one-shot stats call per running runtime on every load, vs the list
 * served from the figures the control plane keeps current in the background (RuntimeFigures).
 * Both are measured in this run, on the same platform; the figure is their ratio.
 *
 * No Docker: the production composition root (buildPlatform) runs over the in-memory provisioner
 * of the tests, whose `stats` is slowed down to an engine's pace. The pace: the issue measured
 * 2.3 s for a list of 50 running runtimes, i.e. ~46 ms per stats call with the engine answering
 * them one after another; the model engine here answers stats calls one at a time, BENCH_STATS_MS
 * (45) each. A real engine differs: Docker 20.10's one-shot stats (stream=false) waits ~2 s for its
 * samples, but calls overlap freely (8 at once took 2.0 s here). BENCH_ENGINE=overlapping models
 * that instead: every call takes BENCH_STATS_MS (then 2000 by default) and none waits for another.
 * Either way the old list's cost is paid on every load and the new one's is not.
 *
 *   old       what listWithStats did until now: the runtime views, then the provisioner's one-shot
 *             stats of every running runtime, all at once (Promise.all), in-process; BENCH_OLD_ROUNDS (3)
 *   new       the list from the kept figures: in-process (RuntimeManager.listWithStats), and over
 *             HTTP (GET /api/v1/admin/runtimes on 127.0.0.1, a keep-alive connection, JSON parsed),
 *             BENCH_LIST_SAMPLES (100) each, measured while the background poll is running against
 *             the slow engine (its real condition) and again after its cycle ended
 *   poll      how long one background cycle over every running runtime takes at this pace, which
 *             bounds how old a figure gets (cycle + the pause between cycles), and the ages the list
 *             shows at the end
 *
 * Knobs: BENCH_RUNTIMES (200), BENCH_ENGINE (serial|overlapping), BENCH_STATS_MS (45 | 2000),
 * BENCH_OLD_ROUNDS (3), BENCH_LIST_SAMPLES (100).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { NO_ORIGIN, SYSTEM_ACTOR } from '../src/domain/audit';
import type { RuntimeStats } from '../src/runtime/provisioner';
import type { RuntimeListItem } from '../src/runtime/runtimeList';
import { alwaysReadyProbe, FakeProvisioner } from '../test/support/fakeProvisioner';
import { createHarness, RealTimeClock, STRONG_PASSWORD } from '../test/support/harness';
import { knob, machineNote, percentile, ratio, table } from './support';

const RUNTIMES = knob('BENCH_RUNTIMES', 200);
const OVERLAPPING = process.env.BENCH_ENGINE === 'overlapping';
if (process.env.BENCH_ENGINE && !OVERLAPPING && process.env.BENCH_ENGINE !== 'serial') throw new Error('BENCH_ENGINE must be serial or overlapping');
const STATS_MS = knob('BENCH_STATS_MS', OVERLAPPING ? 2000 : 45);
const OLD_ROUNDS = knob('BENCH_OLD_ROUNDS', 3);
const SAMPLES = knob('BENCH_LIST_SAMPLES', 100);

const wait = () => new Promise<void>((resolve) => setTimeout(resolve, STATS_MS));

/** The in-memory provisioner with an engine's pace for stats: STATS_MS per call, one at a time (serial) or all at once (overlapping). */
class PacedProvisioner extends FakeProvisioner {
  calls = 0;
  private turn: Promise<void> = Promise.resolve();
  override stats(instanceId: string): Promise<RuntimeStats | null> {
    this.calls++;
    const mine = OVERLAPPING ? wait() : this.turn.then(wait);
    if (!OVERLAPPING) this.turn = mine;
    return mine.then(() => super.stats(instanceId));
  }
}

const ms = (value: number) => (Number.isNaN(value) ? '-' : value >= 1000 ? `${(value / 1000).toFixed(2)} s` : `${value.toFixed(value < 10 ? 2 : 1)} ms`);

async function timed<T>(work: () => Promise<T> | T): Promise<{ ms: number; value: T }> {
  const start = performance.now();
  const value = await work();
  return { ms: performance.now() - start, value };
}

async function main(): Promise<void> {
  const provisioner = new PacedProvisioner();
  const h = createHarness({ runtimeProvisioner: provisioner, runtimeProbe: alwaysReadyProbe, clock: new RealTimeClock(), env: { CLAWLOOPS_LOG_LEVEL: 'warn' } });
  const server = http.createServer(h.platform.app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const get = (path: string, cookie: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.get(`${base}${path}`, { agent, headers: { cookie } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      });
      req.on('error', reject);
    });

  try {
    // ---- set-up: an admin, RUNTIMES members, each with a running runtime ----
    const { client: admin } = await h.setupAdmin('admin');
    const login = await fetch(`${base}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: h.config.publicOrigin },
      body: JSON.stringify({ username: 'admin', password: STRONG_PASSWORD }),
    });
    const cookie = (login.headers.getSetCookie()[0] ?? '').split(';')[0] ?? '';
    if (login.status !== 200 || !cookie) throw new Error(`admin sign-in failed: ${login.status}`);
    const runtimes = h.platform.runtimes;
    for (let i = 0; i < RUNTIMES; i++) {
      const { userId } = await h.createMember(admin, `member${i}`);
      const started = runtimes.start({ ...SYSTEM_ACTOR, username: '(bench)' }, userId, NO_ORIGIN);
      if (started.runtime.id) await runtimes.settled(started.runtime.id);
    }
    const running = runtimes.listViews().filter((v) => v.state === 'running').length;
    if (running !== RUNTIMES) throw new Error(`expected ${RUNTIMES} running runtimes, found ${running}`);

    console.log(`\n## Admin runtime list with ${RUNTIMES} running runtimes, engine stats at ${STATS_MS} ms per call, ${OVERLAPPING ? 'calls overlapping' : 'one call at a time'} (${await machineNote()})\n`);

    // ---- old: one one-shot stats call per running runtime on every load (as listWithStats did) ----
    const oldWay = async () => {
      const views = runtimes.listViews();
      return Promise.all(
        views.map(async (view) => {
          const instance = view.id && view.startedAt ? provisioner.running(view.id) : undefined;
          return { ...view, stats: instance ? await provisioner.stats(instance.id).catch(() => null) : null };
        }),
      );
    };
    const old: number[] = [];
    for (let round = 0; round < OLD_ROUNDS; round++) {
      const calls = provisioner.calls;
      const { ms: took, value } = await timed(oldWay);
      if (provisioner.calls - calls !== RUNTIMES || value.some((item) => item.stats === null)) throw new Error('the old way did not measure every runtime');
      old.push(took);
    }

    // ---- new: the background poll starts (its first cycle runs against the slow engine) ----
    const figures = runtimes.figures;
    const cycleStart = performance.now();
    figures.start();
    const firstCycle = figures.cycle().then(() => performance.now() - cycleStart);
    const measureNew = async () => {
      const inProcess: number[] = [];
      const overHttp: number[] = [];
      const calls = provisioner.calls;
      let bytes = 0;
      for (let i = 0; i < SAMPLES; i++) {
        inProcess.push((await timed(() => runtimes.listWithStats())).ms);
        const { ms: took, value } = await timed(async () => {
          const res = await get('/api/v1/admin/runtimes', cookie);
          if (res.status !== 200) throw new Error(`GET /api/v1/admin/runtimes answered ${res.status}`);
          return { items: (JSON.parse(res.body) as { items: RuntimeListItem[] }).items, bytes: res.body.length };
        });
        overHttp.push(took);
        bytes = value.bytes;
      }
      return { inProcess, overHttp, bytes, engineCallsDuring: provisioner.calls - calls };
    };
    const during = await measureNew();
    const cycleMs = await firstCycle;
    const after = await measureNew();
    const viewsOnly: number[] = [];
    for (let i = 0; i < SAMPLES; i++) viewsOnly.push((await timed(() => runtimes.listViews())).ms);
    const items = (JSON.parse((await get('/api/v1/admin/runtimes', cookie)).body) as { items: RuntimeListItem[] }).items;
    const withFigures = items.filter((i) => i.stats !== null).length;
    const ages = items.flatMap((i) => (i.statsAgeSeconds === null ? [] : [i.statsAgeSeconds]));
    figures.close();

    const oldP50 = percentile(old, 50);
    const row = (name: string, values: number[], note: string) => [name, ms(percentile(values, 50)), ms(percentile(values, 95)), ms(Math.max(...values)), `${ratio(oldP50, percentile(values, 50))}×`, note];
    console.log(
      table([
        ['list', 'p50', 'p95', 'max', 'old/new (p50)', 'what'],
        row('old: one-shot stats per runtime', old, `${OLD_ROUNDS} rounds, in-process, ${RUNTIMES} engine calls each`),
        row('new, in-process, poll cycle running', during.inProcess, `${SAMPLES} samples; the poll made ${during.engineCallsDuring} engine calls meanwhile, the list none`),
        row('new, over HTTP, poll cycle running', during.overHttp, `GET /api/v1/admin/runtimes, keep-alive, ${Math.round(during.bytes / 1024)} KiB JSON`),
        row('new, in-process, between cycles', after.inProcess, `${SAMPLES} samples`),
        row('new, over HTTP, between cycles', after.overHttp, `${SAMPLES} samples`),
        [...row('context: the views alone', viewsOnly, `${SAMPLES} samples of listViews() (what both lists start from)`).slice(0, 4), '', `${SAMPLES} samples of listViews() (what both lists start from)`],
      ]),
    );
    console.log(
      `\nBackground poll: one cycle over ${RUNTIMES} runtimes took ${ms(cycleMs)} at this engine pace (then the pause between cycles, 5 s by default); ` +
        `the list showed figures for ${withFigures}/${items.length} runtimes, ages ${Math.min(...ages)}–${Math.max(...ages)} s.`,
    );
    console.log(`Target: well under 100 ms at ${RUNTIMES} runtimes (new over HTTP p95: ${ms(percentile(after.overHttp, 95))}).`);
  } finally {
    agent.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await h.platform.runtimes.drain(5_000);
    h.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
