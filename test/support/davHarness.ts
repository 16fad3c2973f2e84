/**
 * /dav/ on a free port over the workspace-volume port's fake (a folder of this machine), with one
 * admin and a files-scoped app password: what the runs of outside WebDAV clients (litmus, rclone,
 * davfs2) need before they start.
 */
import fs from 'node:fs';
import type http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { alwaysReadyProbe, FakeProvisioner } from './fakeProvisioner';
import { FakeWorkspaceVolumes } from './fakeWorkspaceVolumes';
import { createHarness, type Harness } from './harness';
import { closeServer, servePlatform } from './hostClient';

export interface DavHarness {
  h: Harness;
  /** `http://127.0.0.1:<port>/dav/` */
  url: string;
  username: string;
  secret: string;
  /** A scratch folder of the test's own; the volume is `<work>/volume`. */
  work: string;
  /** The member's file root on this machine (what /dav/ shows). */
  filesRoot: string;
  close(): Promise<void>;
}

export async function davHarness(name: string): Promise<DavHarness> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), `clawloops-${name}-`));
  const volumeDir = path.join(work, 'volume');
  const filesRoot = path.join(volumeDir, 'workspace');
  const h = createHarness({
    runtimeProvisioner: new FakeProvisioner(),
    runtimeProbe: alwaysReadyProbe,
    workspaceVolumes: new FakeWorkspaceVolumes(volumeDir),
    files: { volumeRoot: volumeDir, root: filesRoot },
  });
  let server: http.Server | null = null;
  try {
    const { client } = await h.setupAdmin();
    const created = await client.post('/api/v1/account/tokens').send({ name, scopes: ['files'], expiresInDays: 1 });
    const secret = (created.body as { secret: string }).secret;
    const served = await servePlatform(h.platform);
    server = served.server;
    const listening = server;
    return {
      h,
      url: `http://127.0.0.1:${served.port}/dav/`,
      username: 'admin',
      secret,
      work,
      filesRoot,
      async close() {
        await closeServer(listening);
        h.close();
        fs.rmSync(work, { recursive: true, force: true });
      },
    };
  } catch (err) {
    if (server) await closeServer(server);
    h.close();
    fs.rmSync(work, { recursive: true, force: true });
    throw err;
  }
}
