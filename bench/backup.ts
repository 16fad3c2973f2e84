/**
 * Backups against the local engine, every figure next to a baseline of the same run:
 *
 *   raw read      dockerode getArchive of the user's whole volume (a created helper container
 *                 holding it, as the backup's file helper does), consumed to nothing: THE baseline
 *   backup        BackupService.create(): the database snapshot, then the same volume streamed
 *                 through the file helper, the staging folder filtered out, encrypted (age,
 *                 ChaCha20-Poly1305) and written to the backup folder
 *   RSS           the control plane's resident memory during a backup, above what it was before
 *   raw write     putArchive of the plain tar into a fresh volume: the restore baseline
 *   restore       the volume part read, checked (SHA-256), decrypted and unpacked into a fresh volume
 *
 * The throughput headline is the median of the rounds' own ratios (raw read and backup measured
 * back to back), as in bench/egress.ts; the ratio of the medians is printed beside it.
 *
 * Usage: npx tsx bench/backup.ts   Env: BENCH_BACKUP_MIB (1024), BENCH_ROUNDS (5).
 */
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { generateIdentity } from '../src/backup/ageFormat';
import { readManifest, readPart, syncToDisk } from '../src/backup/backupFormat';
import { bundledWorker } from '../src/backup/sealedParts';
import { LABELS } from '../src/docker/runtimeBackend';
import { runtimeNames } from '../src/docker/runtimeContainer';
import { OPENCLAW_HOME, RUNTIME_UID } from '../src/runtime/runtimeSettings';
import { benchInstance, docker, knob, machineCpu, machineCoresBusySince, machineNote, mib, p50, processCpuMs, ratio, startBenchPlatform, STANDIN_IMAGE, sweep, sweepOnSignal, table } from './support';

const MIBS = knob('BENCH_BACKUP_MIB', 1024);
const ROUNDS = knob('BENCH_ROUNDS', 5);
const MiB = 1024 ** 2;
const instance = benchInstance();
sweepOnSignal(instance);

/** A container that never starts, holding `volume` where the runtime has it: what the archive API reads through. */
async function holder(volume: string, name: string): Promise<string> {
  const container = await docker.createContainer({
    name: `${instance}-${name}`,
    Image: STANDIN_IMAGE,
    User: `${RUNTIME_UID}:${RUNTIME_UID}`,
    Entrypoint: ['true'],
    Labels: { [LABELS.instance]: instance },
    HostConfig: { NetworkMode: 'none', Mounts: [{ Type: 'volume', Source: volume, Target: OPENCLAW_HOME }] },
  });
  return container.id;
}

/** Writes `mibs` MiB of incompressible data into the volume, as the runtime's user. */
async function fill(volume: string, mibs: number): Promise<void> {
  const script = `const c=require('crypto'),f=require('fs');f.mkdirSync('${OPENCLAW_HOME}/workspace',{recursive:true});const fd=f.openSync('${OPENCLAW_HOME}/workspace/big.bin','w');const b=c.randomBytes(1<<20);for(let i=0;i<${mibs};i++){b.writeUInt32BE(i,0);f.writeSync(fd,b)}f.closeSync(fd)`;
  const container = await docker.createContainer({
    Image: STANDIN_IMAGE,
    User: `${RUNTIME_UID}:${RUNTIME_UID}`,
    Entrypoint: ['node', '-e', script],
    Labels: { [LABELS.instance]: instance },
    HostConfig: { NetworkMode: 'none', Mounts: [{ Type: 'volume', Source: volume, Target: OPENCLAW_HOME }] },
  });
  await container.start();
  const { StatusCode } = (await container.wait()) as { StatusCode: number };
  await container.remove({ force: true });
  if (StatusCode !== 0) throw new Error(`filling the volume failed (${StatusCode})`);
}

const settleDisk = () => execFileSync('sync');

/**
 * Where a measurement's CPU went: the machine's busy cores on average, and this process's own
 * CPU seconds (every thread: the control plane runs in it). A read that already keeps most of
 * the machine busy leaves little for encryption and hashing.
 */
function cpuDuring(): () => { cores: number; processS: number } {
  const machine = machineCpu();
  const own = processCpuMs();
  return () => {
    return { cores: machineCoresBusySince(machine), processS: (processCpuMs() - own) / 1000 };
  };
}

/**
 * The disk alone: `bytes` from memory written to a file beside the backups and on the disk when
 * done, write-back started every 32 MiB as the sealing worker does. No backup written to this
 * disk can be faster; when it is slower than the engine's read, the read is not the limit.
 */
async function writeFromMemory(file: string, bytes: number): Promise<void> {
  const block = crypto.randomBytes(4 * MiB);
  const handle = await fs.promises.open(file, 'w');
  try {
    let flushing: Promise<void> | null = null;
    for (let written = 0; written < bytes; ) {
      const n = Math.min(block.length, bytes - written);
      await handle.write(block, 0, n);
      written += n;
      if (written % (32 * MiB) === 0 && !flushing) flushing = handle.datasync().finally(() => (flushing = null));
    }
    await flushing;
    await handle.datasync();
  } finally {
    await handle.close();
  }
}

const counter = () => {
  let bytes = 0;
  return { sink: new Writable({ write: (c: Buffer, _e, done) => ((bytes += c.length), done()) }), bytes: () => bytes };
};

async function main(): Promise<void> {
  console.log(await machineNote());
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'clawloops-bench-backup-'));
  const keyFile = path.join(work, 'key.txt');
  const key = generateIdentity();
  fs.writeFileSync(keyFile, key.text, { mode: 0o600 });
  const backupDir = path.join(work, 'backups');
  const bench = await startBenchPlatform({
    instance,
    runtimeSettings: { image: STANDIN_IMAGE },
    env: { CLAWLOOPS_BACKUP_KEY_FILE: keyFile, CLAWLOOPS_BACKUP_DIR: backupDir },
  });
  try {
    const member = await bench.newMember('alice');
    const runtimeId = bench.platform.runtimes.runtimeIdForUser(member.userId) ?? '';
    await bench.platform.runtimes.prepareResources(member.userId);
    const volume = runtimeNames(runtimeId).volume;
    console.log(`filling ${volume} with ${MIBS} MiB …`);
    await fill(volume, MIBS);
    const reader = await holder(volume, 'raw-reader');
    // Running from the sources, the sealing worker is bundled with esbuild on first use (the
    // built control plane ships it compiled): done here, so no round measures a development cost.
    await bundledWorker();

    const raw: number[] = [];
    const rawToFile: number[] = [];
    const diskAlone: number[] = [];
    const ours: number[] = [];
    const rss: number[] = [];
    const cpu: Record<'raw' | 'rawToFile' | 'ours', { cores: number; processS: number }[]> = { raw: [], rawToFile: [], ours: [] };
    let volumeBytes = 0;
    let lastBackup = '';
    for (let round = 0; round < ROUNDS; round++) {
      // Each measurement starts with nothing of the last one still being written back to disk:
      // otherwise whichever comes after a 1 GiB write pays for it.
      settleDisk();
      const started = performance.now();
      const rawCpu = cpuDuring();
      const { sink, bytes } = counter();
      await pipeline((await docker.getContainer(reader).getArchive({ path: OPENCLAW_HOME })) as unknown as Readable, sink);
      raw.push(performance.now() - started);
      cpu.raw.push(rawCpu());
      volumeBytes = bytes();
      // The same read written to a file next to the backups, and on the disk when done (as a
      // backup's parts are): the disk work a backup cannot skip.
      const copy = path.join(work, 'raw-copy.tar');
      settleDisk();
      const t1 = performance.now();
      const toFileCpu = cpuDuring();
      await pipeline((await docker.getContainer(reader).getArchive({ path: OPENCLAW_HOME })) as unknown as Readable, fs.createWriteStream(copy, { highWaterMark: 4 * MiB }));
      await syncToDisk(copy);
      rawToFile.push(performance.now() - t1);
      cpu.rawToFile.push(toFileCpu());
      fs.rmSync(copy);
      settleDisk();
      const t2 = performance.now();
      await writeFromMemory(copy, volumeBytes);
      diskAlone.push(performance.now() - t2);
      fs.rmSync(copy);

      for (const id of fs.existsSync(backupDir) ? fs.readdirSync(backupDir) : []) fs.rmSync(path.join(backupDir, id), { recursive: true, force: true });
      global.gc?.();
      settleDisk();
      const before = process.memoryUsage().rss;
      let peak = before;
      const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
      const t0 = performance.now();
      const oursCpu = cpuDuring();
      const summary = await bench.platform.backups.create();
      ours.push(performance.now() - t0);
      cpu.ours.push(oursCpu());
      clearInterval(sampler);
      rss.push(peak - before);
      lastBackup = summary.id;
      console.log(`  round ${round + 1}/${ROUNDS}: raw read ${Math.round(raw[round] ?? 0)} ms, backup ${Math.round(ours[round] ?? 0)} ms, RSS +${mib(rss[round] ?? 0)}`);
    }

    // Restore: the volume part into a fresh volume, against putArchive of the same plain tar.
    const dir = path.join(backupDir, lastBackup);
    const manifest = await readManifest(dir, key.identity);
    const part = manifest.parts.find((p) => p.kind === 'volume' && p.runtimeId === runtimeId);
    if (!part) throw new Error('no volume part');
    const plainTar = path.join(work, 'plain.tar');
    await pipeline((await docker.getContainer(reader).getArchive({ path: OPENCLAW_HOME })) as unknown as Readable, fs.createWriteStream(plainTar));
    const rawWrite: number[] = [];
    const restore: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      for (const [label, into] of [
        ['raw', rawWrite],
        ['restore', restore],
      ] as const) {
        const name = `${instance}-restore-${label}-${round}`;
        await docker.createVolume({ Name: name, Labels: { [LABELS.instance]: instance } });
        const target = await holder(name, `${label}-${round}`);
        const t0 = performance.now();
        if (label === 'raw') {
          await docker.getContainer(target).putArchive(fs.createReadStream(plainTar), { path: path.posix.dirname(OPENCLAW_HOME) });
        } else {
          const archive = new PassThrough();
          await Promise.all([readPart(dir, part, key.identity, archive), docker.getContainer(target).putArchive(archive, { path: path.posix.dirname(OPENCLAW_HOME) })]);
        }
        into.push(performance.now() - t0);
        await docker.getContainer(target).remove({ force: true });
        await docker.getVolume(name).remove();
      }
    }

    const mbps = (ms: number) => volumeBytes / MiB / (ms / 1000);
    console.log(`\n## Backup of one ${mib(volumeBytes)} volume (+ the database), ${ROUNDS} rounds, medians\n`);
    console.log(
      table([
        ['path', 'time', 'MiB/s', 'vs baseline'],
        ['raw getArchive of the volume  [baseline]', `${Math.round(p50(raw))} ms`, mbps(p50(raw)).toFixed(0), '1.00'],
        ['the disk alone: as many bytes from memory, written and synced', `${Math.round(p50(diskAlone))} ms`, mbps(p50(diskAlone)).toFixed(0), ratio(mbps(p50(diskAlone)), mbps(p50(raw)))],
        ['raw getArchive written to a file (the same disk work)', `${Math.round(p50(rawToFile))} ms`, mbps(p50(rawToFile)).toFixed(0), ratio(mbps(p50(rawToFile)), mbps(p50(raw)))],
        ['backup (database + volume, encrypted, written)', `${Math.round(p50(ours))} ms`, mbps(p50(ours)).toFixed(0), ratio(mbps(p50(ours)), mbps(p50(raw)))],
        ['raw putArchive into a fresh volume  [baseline]', `${Math.round(p50(rawWrite))} ms`, mbps(p50(rawWrite)).toFixed(0), '1.00'],
        ['restore of the volume part (checked, decrypted, unpacked)', `${Math.round(p50(restore))} ms`, mbps(p50(restore)).toFixed(0), ratio(mbps(p50(restore)), mbps(p50(rawWrite)))],
      ]),
    );
    const cpuRow = (label: string, samples: { cores: number; processS: number }[]) => [label, p50(samples.map((c) => c.cores)).toFixed(2), p50(samples.map((c) => c.processS)).toFixed(1)];
    console.log(`\nwhere the CPU went (${os.cpus().length} CPUs; medians):\n`);
    console.log(
      table([
        ['path', 'machine cores busy', 'control-plane CPU s'],
        cpuRow('raw getArchive, read to nothing', cpu.raw),
        cpuRow('raw getArchive written to a file', cpu.rawToFile),
        cpuRow('backup', cpu.ours),
      ]),
    );
    // Each round reads raw and backs up back to back: the median of the rounds' own ratios holds
    // up when the machine's speed drifts between rounds (the same raw GiB took 3.6–6.7 s in one run).
    const perRound = raw.map((r, i) => r / (ours[i] ?? NaN));
    const throughput = p50(perRound);
    const peak = Math.max(...rss);
    console.log(`\nbackup throughput per round: ${perRound.map((r) => `${(r * 100).toFixed(0)} %`).join(', ')} of raw getArchive in the same round`);
    console.log(`backup throughput ${(throughput * 100).toFixed(0)} % of raw getArchive, median of the rounds (target ≥ 70 %: ${throughput >= 0.7 ? 'MET' : 'MISSED'}); ratio of the medians ${((mbps(p50(ours)) / mbps(p50(raw))) * 100).toFixed(0)} %; ${((mbps(p50(ours)) / mbps(p50(rawToFile))) * 100).toFixed(0)} % of raw getArchive written to a file`);
    console.log(`the disk alone writes ${((mbps(p50(diskAlone)) / mbps(p50(raw))) * 100).toFixed(0)} % of what raw getArchive reads in the same time: the ceiling of any backup written to it`);
    console.log(`control-plane RSS growth during a backup: at most ${mib(peak)} (target < 64 MiB: ${peak < 64 * MiB ? 'MET' : 'MISSED'})`);
    console.log(`restore of ${mib(volumeBytes)}: ${Math.round(p50(restore))} ms (${ratio(p50(restore), p50(rawWrite))}× raw putArchive)`);
  } finally {
    await bench.close();
    await sweep(instance);
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
