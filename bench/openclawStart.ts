/**
 * The real OpenClaw image through the API, with the product's default runtime settings (image
 * ghcr.io/openclaw/openclaw:2026.9.6, 2 GiB, 2 CPUs): start → ready for NEW users (absolute
 * figures: there is no raw baseline worth the name, the gateway's own boot dominates) and the
 * memory of an idle runtime, read from the admin API (GET /api/v1/admin/runtimes, which takes a
 * one-shot `docker stats`) right after ready and again after a few idle seconds. Runtimes start
 * one after the other, and each is stopped once measured so the next boots on idle cores.
 *
 * Usage: npx tsx bench/openclawStart.ts [iterations]      (default 5; ~18 s each)
 */
import { DEFAULT_RUNTIME_IMAGE } from '../src/runtime/runtimeSettings';
import { benchInstance, docker, fmt, machineNote, mib, p50, p95, sleep, startBenchPlatform, sweep, sweepOnSignal, table, type BenchPlatform, type TimedOperation } from './support';

const ITERATIONS = Number(process.argv[2] ?? 5);
const IDLE_MS = 5_000;
const instance = benchInstance();

interface RuntimeItem {
  userId: string;
  stats: { memoryBytes: number; memoryLimitBytes: number; cpuPercent: number } | null;
}

async function memoryOf(bench: BenchPlatform, userId: string): Promise<{ bytes: number; cpu: number }> {
  const res = await bench.request('GET', '/api/v1/admin/runtimes', bench.adminCookie);
  if (res.status !== 200) throw new Error(`GET /api/v1/admin/runtimes answered ${res.status}`);
  const item = (res.body as { items: RuntimeItem[] }).items.find((i) => i.userId === userId);
  if (!item?.stats) throw new Error('the admin API has no stats for a running runtime');
  return { bytes: item.stats.memoryBytes, cpu: item.stats.cpuPercent };
}

async function main(): Promise<void> {
  sweepOnSignal(instance);
  const image = await docker.getImage(DEFAULT_RUNTIME_IMAGE).inspect().catch(() => null);
  if (!image) throw new Error(`${DEFAULT_RUNTIME_IMAGE} is not on this host: bash scripts/images/build-openclaw-image.sh`);
  console.log(`instance label ${instance}; engine ${(await docker.version()).Version}; ${new Date().toISOString()}; ${await machineNote()}`);
  // Product defaults throughout: no runtime setting is overridden.
  const bench = await startBenchPlatform({ instance });
  const { settings } = bench.platform.runtimes;
  const starts: TimedOperation[] = [];
  const stops: number[] = [];
  const memAtReady: number[] = [];
  const memIdle: number[] = [];
  const cpuIdle: number[] = [];
  try {
    for (let i = 0; i < ITERATIONS; i++) {
      const member = await bench.newMember(`claw${i}`);
      const stream = await bench.follow(member);
      try {
        const start = await stream.run('start');
        if (start.status !== 'succeeded') throw new Error(`start ended ${start.status}: ${start.error}`);
        starts.push(start);
        memAtReady.push((await memoryOf(bench, member.userId)).bytes);
        await sleep(IDLE_MS);
        const idle = await memoryOf(bench, member.userId);
        memIdle.push(idle.bytes);
        cpuIdle.push(idle.cpu);
        const stop = await stream.run('stop');
        if (stop.status !== 'succeeded') throw new Error(`stop ended ${stop.status}: ${stop.error}`);
        stops.push(stop.ms);
        process.stderr.write(`  ${i + 1}/${ITERATIONS}: ready after ${fmt(start.ms)}, ${mib(memIdle[memIdle.length - 1] ?? NaN)} idle, stopped in ${fmt(stop.ms)}\n`);
      } finally {
        stream.close();
      }
    }
  } catch (err) {
    console.error(`--- platform log (last lines)\n${bench.logText().split('\n').slice(-30).join('\n')}`);
    throw err;
  } finally {
    await bench.close();
  }

  const ms = starts.map((s) => s.ms);
  const step = (name: string) => starts.map((s) => s.steps.find((x) => x.step === name)?.at).filter((v): v is number => v !== undefined);
  const live = step('waiting-for-health, /healthz answered');
  const fiveNum = (v: number[], f: (x: number) => string) => [f(p50(v)), f(p95(v)), f(Math.min(...v)), f(Math.max(...v))];
  console.log(
    `\n## 3. Real OpenClaw through the API: ${ITERATIONS} new users, one after the other (${DEFAULT_RUNTIME_IMAGE}, ${mib(settings.memoryBytes)} / ${settings.nanoCpus / 1e9} CPUs / pids ${settings.pidsLimit})\n`,
  );
  console.log(
    table([
      ['measure', 'p50', 'p95', 'min', 'max'],
      ['start → ready (POST → SSE "succeeded")', ...fiveNum(ms, fmt)],
      ['  of which: POST → container started', ...fiveNum(step('waiting-for-health'), fmt)],
      ['  of which: POST → /healthz answered', ...(live.length > 0 ? fiveNum(live, fmt) : ['-', '-', '-', '-'])],
      ['memory right after ready', ...fiveNum(memAtReady, mib)],
      [`memory ${IDLE_MS / 1000} s after ready (idle)`, ...fiveNum(memIdle, mib)],
      [`CPU ${IDLE_MS / 1000} s after ready (% of one core)`, ...fiveNum(cpuIdle, (x) => `${x.toFixed(1)} %`)],
      ['stop (POST → SSE "succeeded")', ...fiveNum(stops, fmt)],
    ]),
  );
  console.log(`memory: the admin API's one-shot docker stats (usage minus inactive file cache), limit ${mib(settings.memoryBytes)}.`);
}

main()
  .catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(() => sweep(instance).catch(() => undefined));
