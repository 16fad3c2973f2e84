/**
 * rclone (Debian's package) syncs a tree with unicode names, awkward characters and empty folders
 * up into /dav/ and back down, over the workspace-volume port's fake: every file byte-identical by
 * SHA-256, every folder there. (The 256 MiB file of the issue belongs with the real engine's run;
 * here a 3 MiB one crosses many stream chunks.) Skipped when rclone is not installed.
 */
import fs from 'node:fs';
import type http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { RCLONE, rclone, rcloneRemote, snapshotTree, writeAwkwardTree } from '../support/davClients';
import { alwaysReadyProbe, FakeProvisioner } from '../support/fakeProvisioner';
import { FakeWorkspaceVolumes } from '../support/fakeWorkspaceVolumes';
import { closeServer, servePlatform } from '../support/hostClient';
import { createHarness, type Harness } from '../support/harness';

const describeIf = RCLONE ? describe : describe.skip;

describeIf('rclone through /dav/', () => {
  let h: Harness;
  let server: http.Server;
  let port: number;
  let work: string;
  let volumeDir: string;
  let secret: string;

  beforeAll(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'clawloops-rclone-'));
    volumeDir = path.join(work, 'volume');
    h = createHarness({
      runtimeProvisioner: new FakeProvisioner(),
      runtimeProbe: alwaysReadyProbe,
      workspaceVolumes: new FakeWorkspaceVolumes(volumeDir),
      files: { volumeRoot: volumeDir, root: path.join(volumeDir, 'workspace') },
    });
    const { client } = await h.setupAdmin();
    secret = ((await client.post('/api/v1/account/tokens').send({ name: 'rclone', scopes: ['files'], expiresInDays: 1 })).body as { secret: string }).secret;
    ({ server, port } = await servePlatform(h.platform));
  });

  afterAll(async () => {
    await closeServer(server);
    h.close();
    fs.rmSync(work, { recursive: true, force: true });
  });

  test('a tree goes up and comes back down byte-identical, empty folders included', async () => {
    const source = path.join(work, 'source');
    writeAwkwardTree(source, 3 * 1024 * 1024 + 7);
    const expected = snapshotTree(source);
    const env = await rcloneRemote(work, `http://127.0.0.1:${port}/dav/`, 'admin', secret);
    await rclone(['sync', source, 'dav:tree', '--create-empty-src-dirs'], env);
    expect(snapshotTree(path.join(volumeDir, 'workspace', 'tree'))).toEqual(expected);

    const back = path.join(work, 'back');
    await rclone(['sync', 'dav:tree', back, '--create-empty-src-dirs'], env);
    expect(snapshotTree(back)).toEqual(expected);
    // A second sync finds nothing to do either way.
    await rclone(['check', source, 'dav:tree'], env);
  }, 300_000);
});
