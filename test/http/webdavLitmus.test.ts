/**
 * The litmus WebDAV compliance suite (Debian's `litmus`, scripts/ensure-webdav-clients.sh) against /dav/
 * on a free port, over the workspace-volume port's fake. Every test of the basic and copymove
 * groups must pass; props and locks are run and reported, with each failure and its reason
 * printed, and only the failures listed in KNOWN_FAILURES (with why) are allowed there.
 */
import fs from 'node:fs';
import type http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { LITMUS, litmusReport, runLitmus } from '../support/davClients';
import { alwaysReadyProbe, FakeProvisioner } from '../support/fakeProvisioner';
import { FakeWorkspaceVolumes } from '../support/fakeWorkspaceVolumes';
import { closeServer, servePlatform } from '../support/hostClient';
import { createHarness, type Harness } from '../support/harness';

/** Failures we know of, by group and test name, with the reason (the closing note lists them). */
const KNOWN_FAILURES: Record<string, string> = {};

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
    const all = await runLitmus(`http://127.0.0.1:${port}/dav/`, 'admin', secret, undefined, 120_000);
    for (const group of ['basic', 'copymove', 'props', 'locks']) expect([group, all.some((r) => r.group === group)]).toEqual([group, true]);
    // The record the closing note quotes.
    process.stdout.write(`\nlitmus results\n${litmusReport(all, KNOWN_FAILURES)}\n`);
    const unexpected = all.filter((r) => r.outcome === 'FAIL' && !KNOWN_FAILURES[`${r.group}/${r.test}`]).map((r) => `${r.group}/${r.test}: ${r.detail}`);
    expect(unexpected).toEqual([]);
  }, 600_000);
});
