/**
 * The litmus WebDAV compliance suite (Debian's `litmus`, scripts/ensure-webdav-clients.sh) against /dav/
 * on a free port, over the workspace-volume port's fake. Every test of the basic and copymove
 * groups must pass; props and locks are run and reported, with each failure and its reason
 * printed, and only the failures listed in KNOWN_FAILURES (with why) are allowed there.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import type http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { alwaysReadyProbe, FakeProvisioner } from '../support/fakeProvisioner';
import { FakeWorkspaceVolumes } from '../support/fakeWorkspaceVolumes';
import { closeServer, servePlatform } from '../support/hostClient';
import { createHarness, type Harness } from '../support/harness';

const LITMUS = ['/usr/bin/litmus', '/usr/local/bin/litmus'].find((p) => fs.existsSync(p)) ?? null;
const GROUPS = ['basic', 'copymove', 'props', 'locks'] as const;

/** Failures we know of, by group and test name, with the reason (the closing note lists them). */
const KNOWN_FAILURES: Record<string, string> = {};

interface LitmusResult {
  group: string;
  test: string;
  outcome: 'pass' | 'FAIL' | 'WARNING' | 'SKIPPED';
  detail: string;
}

function parse(group: string, output: string): LitmusResult[] {
  const results: LitmusResult[] = [];
  for (const line of output.split('\n')) {
    // Without a terminal litmus prints each test's name twice: "3. put_get.....  3. put_get..... pass".
    const match = /\b\d+\.\s+([\w-]+)\.+\s+(pass|FAIL|WARNING|SKIPPED)\b\s*(.*)$/.exec(line);
    if (match) results.push({ group, test: match[1] as string, outcome: match[2] as LitmusResult['outcome'], detail: (match[3] ?? '').trim() });
    else if (results.length > 0 && /^\s{4,}/.test(line) && !/^\s*\d+\./.test(line)) {
      const last = results[results.length - 1] as LitmusResult;
      last.detail = `${last.detail} ${line.trim()}`.trim();
    }
  }
  return results;
}

const describeIf = LITMUS ? describe : describe.skip;

describeIf('litmus against /dav/', () => {
  let h: Harness;
  let server: http.Server;
  let port: number;
  let secret: string;
  let volumeDir: string;

  beforeAll(async () => {
    volumeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'clawloops-litmus-'));
    h = createHarness({
      runtimeProvisioner: new FakeProvisioner(),
      runtimeProbe: alwaysReadyProbe,
      workspaceVolumes: new FakeWorkspaceVolumes(volumeDir),
      files: { volumeRoot: volumeDir, root: path.join(volumeDir, 'workspace') },
    });
    const { client } = await h.setupAdmin();
    const created = await client.post('/api/v1/account/tokens').send({ name: 'litmus', scopes: ['files'], expiresInDays: 1 });
    secret = (created.body as { secret: string }).secret;
    ({ server, port } = await servePlatform(h.platform));
  });

  afterAll(async () => {
    await closeServer(server);
    h.close();
    fs.rmSync(volumeDir, { recursive: true, force: true });
  });

  test('basic, copymove, props and locks', async () => {
    const all: LitmusResult[] = [];
    for (const group of GROUPS) {
      const output = await new Promise<string>((resolve) => {
        execFile(LITMUS as string, [`http://127.0.0.1:${port}/dav/`, 'admin', secret], { env: { ...process.env, TESTS: group }, timeout: 120_000 }, (_err, stdout, stderr) =>
          resolve(`${stdout}${stderr}`),
        );
      });
      const results = parse(group, output);
      if (results.length === 0) process.stdout.write(`litmus ${group} printed no results:\n${output}\n`);
      expect(results.length).toBeGreaterThan(0);
      all.push(...results);
    }
    const lines = GROUPS.map((group) => {
      const mine = all.filter((r) => r.group === group);
      const passed = mine.filter((r) => r.outcome === 'pass').length;
      const failures = mine.filter((r) => r.outcome === 'FAIL').map((r) => `    FAIL ${r.test}: ${r.detail}${KNOWN_FAILURES[`${group}/${r.test}`] ? ` (known: ${KNOWN_FAILURES[`${group}/${r.test}`]})` : ''}`);
      const warnings = mine.filter((r) => r.outcome === 'WARNING').map((r) => `    WARNING ${r.test}: ${r.detail}`);
      return [`${group}: ${passed}/${mine.length} passed`, ...failures, ...warnings].join('\n');
    });
    // The record the closing note quotes.
    process.stdout.write(`\nlitmus results\n${lines.join('\n')}\n`);
    const unexpected = all.filter((r) => r.outcome === 'FAIL' && !KNOWN_FAILURES[`${r.group}/${r.test}`]).map((r) => `${r.group}/${r.test}: ${r.detail}`);
    expect(unexpected).toEqual([]);
  }, 600_000);
});
