/**
 * The runtime manager against the REAL Docker engine, with the stand-in gateway image
 * (scripts/images/build-standin-image.sh). Every resource carries this run's instance label;
 * afterAll sweeps them, and a failing test prints the containers' logs.
 */
import type TestAgent from 'supertest/lib/agent';
import { LABELS } from '../../src/docker/runtimeBackend';
import { runtimeNames } from '../../src/docker/runtimeContainer';
import { errorCode } from '../support/harness';
import {
  docker,
  engineHarness,
  execIn,
  listen,
  newInstanceId,
  readEvents,
  signIn,
  STANDIN_IMAGE,
  sweep,
  withDiagnostics,
  type EngineHarness,
  type Listening,
} from '../support/engine';

jest.setTimeout(120_000);

const instance = newInstanceId();
let h: EngineHarness;
let admin: TestAgent;
let adminId: string;
const members = new Map<string, { client: TestAgent; userId: string }>();

const it = (name: string, body: () => Promise<void>) => test(name, withDiagnostics(() => instance, () => h.logs.text, body));

async function member(username: string) {
  const known = members.get(username);
  if (known) return known;
  const created = await h.createMember(admin, username);
  members.set(username, created);
  return created;
}

async function startAndWait(client: TestAgent): Promise<Record<string, unknown>> {
  const res = await client.post('/api/v1/runtime/start');
  expect([200, 202]).toContain(res.status);
  const runtimeId = (res.body.runtime as { id: string }).id;
  await h.platform.runtimes.settled(runtimeId);
  const view = await client.get('/api/v1/runtime');
  return view.body as Record<string, unknown>;
}

const containerOf = async (client: TestAgent) => {
  const view = (await client.get('/api/v1/runtime')).body as { id: string };
  const row = h.platform.db.prepare('SELECT container_id FROM runtimes WHERE id = ?').get(view.id) as { container_id: string | null };
  return row.container_id;
};

beforeAll(async () => {
  h = engineHarness({ instance });
  await h.platform.watcher.start();
  ({ client: admin, userId: adminId } = await h.setupAdmin());
});

afterAll(async () => {
  h.platform.watcher.close();
  await h.platform.runtimes.drain(30_000);
  h.close();
  await sweep(instance);
});

describe('start, stop, restart', () => {
  it('a start answers 202 with an operation and ends with the runtime running', async () => {
    const { client } = await member('alice');
    const res = await client.post('/api/v1/runtime/start');
    expect(res.status).toBe(202);
    expect(res.body.operation).toMatchObject({ kind: 'start', status: expect.stringMatching(/queued|running/) });
    expect(res.body.runtime.state).toMatch(/creating|starting/);
    await h.platform.runtimes.settled(res.body.runtime.id);

    const view = (await client.get('/api/v1/runtime')).body;
    expect(view).toMatchObject({
      state: 'running',
      desiredState: 'running',
      image: STANDIN_IMAGE,
      configuredImage: STANDIN_IMAGE,
      outdatedImage: false,
      configStale: false,
      workspaceUrl: 'http://alice.localhost:8080/',
      limits: { memoryBytes: 256 * 1024 ** 2, cpus: 0.5, pidsLimit: 128 },
      lastError: null,
      operation: { kind: 'start', status: 'succeeded', step: 'ready', percent: 100 },
    });
    expect(Date.parse(view.startedAt)).not.toBeNaN();
    expect(Date.parse(view.createdAt)).not.toBeNaN();
  });

  it('a second start of a running runtime is a no-op answered 200', async () => {
    const { client } = await member('alice');
    const before = await containerOf(client);
    const res = await client.post('/api/v1/runtime/start');
    expect(res.status).toBe(200);
    expect(res.body.operation).toBeNull();
    expect(res.body.runtime.state).toBe('running');
    expect(await containerOf(client)).toBe(before);
  });

  it('two starts at once share one operation and one container', async () => {
    const { client } = await member('bruno');
    const [a, b] = await Promise.all([client.post('/api/v1/runtime/start'), client.post('/api/v1/runtime/start')]);
    expect(a.status).toBe(202);
    expect(b.status).toBe(202);
    expect(a.body.operation.id).toBe(b.body.operation.id);
    await h.platform.runtimes.settled(a.body.runtime.id);
    const containers = await docker.listContainers({ all: true, filters: JSON.stringify({ label: [`${LABELS.userId}=${members.get('bruno')?.userId}`] }) });
    expect(containers).toHaveLength(1);
  });

  it('stop answers 202 then the runtime is stopped; a second stop is a 200 no-op', async () => {
    const { client } = await member('alice');
    const res = await client.post('/api/v1/runtime/stop');
    expect(res.status).toBe(202);
    await h.platform.runtimes.settled(res.body.runtime.id);
    const view = (await client.get('/api/v1/runtime')).body;
    expect(view).toMatchObject({ state: 'stopped', desiredState: 'stopped', startedAt: null, stoppedBy: { cause: 'member' } });
    expect(view.stateReason).toMatch(/^Stopped by its owner at /);
    const again = await client.post('/api/v1/runtime/stop');
    expect(again.status).toBe(200);
    expect(again.body.operation).toBeNull();
  });

  it('restart brings a stopped runtime back and reuses its container when nothing changed', async () => {
    const { client } = await member('alice');
    const before = await containerOf(client);
    const res = await client.post('/api/v1/runtime/restart');
    expect(res.status).toBe(202);
    await h.platform.runtimes.settled(res.body.runtime.id);
    expect((await client.get('/api/v1/runtime')).body.state).toBe('running');
    expect(await containerOf(client)).toBe(before);
  });

  it('a stop that arrives while a start is in flight is refused with 409 RUNTIME_BUSY', async () => {
    const { client } = await member('carol');
    const start = await client.post('/api/v1/runtime/start');
    expect(start.status).toBe(202);
    const stop = await client.post('/api/v1/runtime/stop');
    expect(stop.status).toBe(409);
    expect(errorCode(stop)).toBe('RUNTIME_BUSY');
    expect(stop.body.error.message).toMatch(/start of this runtime is in progress/);
    await h.platform.runtimes.settled(start.body.runtime.id);
    expect((await client.get('/api/v1/runtime')).body.state).toBe('running');
  });
});

describe('the container is hardened', () => {
  it('security options, limits, user, restart policy, labels; no ports, no host network, no Docker socket', async () => {
    const { client, userId } = await member('alice');
    await startAndWait(client);
    const info = await docker.getContainer((await containerOf(client)) ?? '').inspect();
    const view = (await client.get('/api/v1/runtime')).body;
    expect(info.Config.User).toBe('1000:1000');
    expect(info.HostConfig.Init).toBe(true);
    expect(info.HostConfig.CapDrop).toEqual(['ALL']);
    expect(info.HostConfig.CapAdd ?? []).toEqual([]);
    expect(info.HostConfig.SecurityOpt).toContain('no-new-privileges');
    expect(info.HostConfig.Privileged).toBe(false);
    expect(info.HostConfig.Memory).toBe(256 * 1024 ** 2);
    expect(info.HostConfig.MemorySwap).toBe(256 * 1024 ** 2);
    expect(info.HostConfig.NanoCpus).toBe(0.5e9);
    expect(info.HostConfig.PidsLimit).toBe(128);
    expect(info.HostConfig.RestartPolicy?.Name).toBe('unless-stopped');
    expect(info.HostConfig.NetworkMode).toBe(runtimeNames(view.id).network);
    expect(info.HostConfig.PortBindings ?? {}).toEqual({});
    expect(info.HostConfig.PublishAllPorts).toBeFalsy();
    expect(Object.values(info.NetworkSettings.Ports ?? {}).every((b) => b === null)).toBe(true);
    expect(Object.keys(info.NetworkSettings.Networks)).toEqual([runtimeNames(view.id).network]);
    expect(info.Mounts.map((m) => m.Destination)).toEqual(['/home/node/.openclaw']);
    expect(info.Mounts[0]).toMatchObject({ Type: 'volume', Name: runtimeNames(view.id).volume });
    expect(JSON.stringify(info.HostConfig.Binds ?? [])).not.toMatch(/docker\.sock/);
    expect(info.Config.Labels).toMatchObject({
      [LABELS.managed]: 'true',
      [LABELS.instance]: instance,
      [LABELS.role]: 'runtime',
      [LABELS.userId]: userId,
      [LABELS.runtimeId]: view.id,
      [LABELS.username]: 'alice',
      [LABELS.configHash]: expect.stringMatching(/^[0-9a-f]{16}$/),
    });
  });

  it('runs as uid 1000 with the rendered config in a volume it can write, and no secret reaches the API', async () => {
    const { client } = await member('alice');
    await startAndWait(client);
    const id = (await containerOf(client)) ?? '';
    const whoami = await execIn(id, ['node', '-e', 'process.stdout.write(JSON.stringify({uid:process.getuid(),gid:process.getgid()}))']);
    expect(JSON.parse(whoami.stdout)).toEqual({ uid: 1000, gid: 1000 });
    const stat = await execIn(id, ['node', '-e', "const s=require('fs').statSync('/home/node/.openclaw/openclaw.json');process.stdout.write(JSON.stringify({uid:s.uid,mode:(s.mode&0o777).toString(8)}))"]);
    expect(JSON.parse(stat.stdout)).toEqual({ uid: 1000, mode: '600' });
    const config = JSON.parse((await execIn(id, ['node', '-e', "process.stdout.write(require('fs').readFileSync('/home/node/.openclaw/openclaw.json'))"])).stdout);
    const network = await docker.getNetwork(runtimeNames((await client.get('/api/v1/runtime')).body.id).network).inspect();
    expect(config.gateway).toMatchObject({
      mode: 'local',
      bind: 'lan',
      port: 18789,
      auth: { mode: 'trusted-proxy', trustedProxy: { userHeader: 'x-forwarded-user', allowUsers: ['alice'] } },
      // The control plane runs on the host here: it reaches the runtime through the network's gateway.
      trustedProxies: [network.IPAM?.Config?.[0]?.Gateway],
      controlUi: { allowedOrigins: ['http://alice.localhost:8080'] },
    });
    // Docker hands out addresses only from the upper half; the lower half is for the proxies' fixed ones.
    const ipam = network.IPAM?.Config?.[0] as { Subnet?: string; IPRange?: string } | undefined;
    const base = Number((ipam?.Subnet ?? '').split('.')[3]?.split('/')[0]);
    expect(ipam?.IPRange).toBe(`${(ipam?.Subnet ?? '').split('.').slice(0, 3).join('.')}.${base + 16}/28`);
    const own = (await docker.getContainer(id).inspect()).NetworkSettings.Networks[network.Name]?.IPAddress ?? '';
    expect(Number(own.split('.')[3])).toBeGreaterThanOrEqual(base + 16);
    expect(config.models.providers.platform.apiKey).toBe('${CLAWLOOPS_MODEL_KEY}');

    const env = (await docker.getContainer(id).inspect()).Config.Env;
    const secret = env.find((e) => e.startsWith('CLAWLOOPS_MODEL_KEY='))?.split('=')[1] ?? '';
    const password = env.find((e) => e.startsWith('OPENCLAW_GATEWAY_PASSWORD='))?.split('=')[1] ?? '';
    expect(secret.length).toBeGreaterThanOrEqual(32);
    expect(password.length).toBeGreaterThanOrEqual(32);
    const everything = JSON.stringify([(await client.get('/api/v1/runtime')).body, (await admin.get('/api/v1/admin/runtimes')).body]) + h.logs.text;
    expect(everything).not.toContain(secret);
    expect(everything).not.toContain(password);
  });

  it("one user's runtime cannot open a connection to another user's runtime", async () => {
    const alice = await member('alice');
    const bruno = await member('bruno');
    await startAndWait(alice.client);
    await startAndWait(bruno.client);
    const aliceId = (await containerOf(alice.client)) ?? '';
    const brunoInfo = await docker.getContainer((await containerOf(bruno.client)) ?? '').inspect();
    const brunoIp = Object.values(brunoInfo.NetworkSettings.Networks)[0]?.IPAddress ?? '';
    expect(brunoIp).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    const probe = `const s=require('net').connect({host:'${brunoIp}',port:18789});s.setTimeout(2000);s.on('connect',()=>{console.log('connected');process.exit(0)});s.on('timeout',()=>{console.log('timeout');process.exit(3)});s.on('error',e=>{console.log(e.code);process.exit(3)})`;
    const result = await execIn(aliceId, ['node', '-e', probe]);
    expect(result.stdout.trim()).not.toBe('connected');
    expect(result.exitCode).toBe(3);
    // The control plane itself does reach both (it probes them for readiness).
    expect((await alice.client.get('/api/v1/runtime')).body.state).toBe('running');
  });
});

describe('data survives everything but a purge', () => {
  it('delete removes the container and keeps the volume; the next start finds the file again', async () => {
    const { client } = await member('dora');
    await startAndWait(client);
    const first = (await containerOf(client)) ?? '';
    const write = await execIn(first, ['node', '-e', "require('fs').mkdirSync('/home/node/.openclaw/workspace',{recursive:true});require('fs').writeFileSync('/home/node/.openclaw/workspace/notes.md','remember me')"]);
    expect(write.exitCode).toBe(0);

    const del = await client.delete('/api/v1/runtime');
    expect(del.status).toBe(202);
    await h.platform.runtimes.settled(del.body.runtime.id);
    const view = (await client.get('/api/v1/runtime')).body;
    expect(view).toMatchObject({ state: 'absent', desiredState: 'deleted' });
    await expect(docker.getContainer(first).inspect()).rejects.toMatchObject({ statusCode: 404 });
    await expect(docker.getVolume(runtimeNames(view.id).volume).inspect()).resolves.toBeTruthy();

    await startAndWait(client);
    const second = (await containerOf(client)) ?? '';
    expect(second).not.toBe(first);
    const read = await execIn(second, ['node', '-e', "process.stdout.write(require('fs').readFileSync('/home/node/.openclaw/workspace/notes.md'))"]);
    expect(read.stdout).toBe('remember me');
  });

  it('purge without the confirmation is refused and changes nothing', async () => {
    const { client } = await member('dora');
    const res = await client.delete('/api/v1/runtime?purge=true');
    expect(res.status).toBe(400);
    expect(errorCode(res)).toBe('PURGE_CONFIRMATION_REQUIRED');
    expect(res.body.error.message).toMatch(/confirm=dora/);
    const wrong = await client.delete('/api/v1/runtime?purge=true&confirm=alice');
    expect(errorCode(wrong)).toBe('PURGE_CONFIRMATION_REQUIRED');
    expect((await client.get('/api/v1/runtime')).body.state).toBe('running');
  });

  it('purge with the confirmation removes container, network and volume', async () => {
    const { client } = await member('dora');
    const id = (await client.get('/api/v1/runtime')).body.id as string;
    const res = await client.delete('/api/v1/runtime?purge=true&confirm=dora');
    expect(res.status).toBe(202);
    await h.platform.runtimes.settled(id);
    await expect(docker.getVolume(runtimeNames(id).volume).inspect()).rejects.toMatchObject({ statusCode: 404 });
    await expect(docker.getNetwork(runtimeNames(id).network).inspect()).rejects.toMatchObject({ statusCode: 404 });
    const view = (await client.get('/api/v1/runtime')).body;
    expect(view).toMatchObject({ id: null, state: 'absent' });
  });
});

describe('progress and logs as Server-Sent Events', () => {
  let server: Listening;
  beforeAll(async () => {
    server = await listen(h);
  });
  afterAll(() => server.close());

  it('a client sees the current state first, then each step up to ready', async () => {
    await member('erin');
    const cookie = await signIn(server, 'erin');
    const events = await readEvents(
      `${server.baseUrl}/api/v1/runtime/events`,
      cookie,
      (e) => e.event === 'progress' && ['succeeded', 'failed'].includes((e.data as { status: string }).status),
      () => {
        void fetch(`${server.baseUrl}/api/v1/runtime/start`, { method: 'POST', headers: { cookie, origin: server.origin } });
      },
    );
    expect(events[0]).toMatchObject({ event: 'state', data: { state: 'absent' } });
    const steps = events.filter((e) => e.event === 'progress').map((e) => (e.data as { step: string }).step);
    for (const step of ['preparing', 'creating', 'configuring', 'starting', 'ready']) expect(steps).toContain(step);
    expect(steps.indexOf('creating')).toBeLessThan(steps.indexOf('starting'));
    const percents = events.filter((e) => e.event === 'progress').map((e) => (e.data as { percent: number }).percent);
    expect(percents[percents.length - 1]).toBe(100);
    expect([...percents].sort((a, b) => a - b)).toEqual(percents);
  });

  it('a client that connects after the start sees where it ended', async () => {
    const cookie = await signIn(server, 'erin');
    const events = await readEvents(`${server.baseUrl}/api/v1/runtime/events`, cookie, () => true);
    expect(events[0]).toMatchObject({ event: 'state', data: { state: 'running', operation: { kind: 'start', step: 'ready' } } });
  });

  it('logs stream stdout and stderr lines separately, owner only', async () => {
    const cookie = await signIn(server, 'erin');
    const events = await readEvents(`${server.baseUrl}/api/v1/runtime/logs?tail=50`, cookie, (e) => e.event === 'end');
    const lines = events.filter((e) => e.event === 'log').map((e) => e.data as { stream: string; line: string });
    expect(lines).toContainEqual({ stream: 'stdout', line: 'standin gateway listening on 18789' });
    expect(lines).toContainEqual({ stream: 'stderr', line: 'standin: stderr check' });
  });

  it('bad log parameters are a 400, not a stream', async () => {
    const { client } = await member('erin');
    const res = await client.get('/api/v1/runtime/logs?tail=-1');
    expect(res.status).toBe(400);
    expect(errorCode(res)).toBe('VALIDATION_FAILED');
  });
});

describe('admin', () => {
  it('lists every runtime with uptime and the figures the control plane keeps of it', async () => {
    await startAndWait((await member('alice')).client);
    // The server keeps them current in the background from start-up; the harness renews them by hand.
    const renewing = Date.now();
    await h.platform.runtimes.figures.cycle();
    const res = await admin.get('/api/v1/admin/runtimes');
    // Taken during this renewal: no older than the time since it began (an engine stats call takes ~2 s here).
    const sinceRenewal = Math.ceil((Date.now() - renewing) / 1000);
    expect(res.status).toBe(200);
    const alice = res.body.items.find((r: { username: string }) => r.username === 'alice');
    expect(alice).toMatchObject({ state: 'running', image: STANDIN_IMAGE, outdatedImage: false });
    expect(alice.uptimeSeconds).toBeGreaterThanOrEqual(0);
    expect(alice.stats.memoryBytes).toBeGreaterThan(1024 * 1024);
    expect(alice.stats.memoryLimitBytes).toBe(256 * 1024 ** 2);
    expect(alice.statsStale).toBe(false);
    expect(alice.statsAgeSeconds).toBeGreaterThanOrEqual(0);
    expect(alice.statsAgeSeconds).toBeLessThanOrEqual(sinceRenewal);
  });

  it("acts on another user's runtime under /admin/users/:id/runtime", async () => {
    const { userId, client } = await member('fritz');
    const start = await admin.post(`/api/v1/admin/users/${userId}/runtime/start`);
    expect(start.status).toBe(202);
    await h.platform.runtimes.settled(start.body.runtime.id);
    expect((await client.get('/api/v1/runtime')).body.state).toBe('running');
    const stop = await admin.post(`/api/v1/admin/users/${userId}/runtime/stop`);
    expect(stop.status).toBe(202);
    await h.platform.runtimes.settled(start.body.runtime.id);
    expect((await admin.get(`/api/v1/admin/users/${userId}/runtime`)).body.state).toBe('stopped');
    const audit = (await admin.get('/api/v1/admin/audit?action=runtime.start')).body.items;
    expect(audit.some((e: { actor: { username: string }; target: { label: string } }) => e.actor.username === 'admin' && e.target.label === 'fritz')).toBe(true);
  });

  it('a member cannot reach the admin runtime routes', async () => {
    const { client } = await member('alice');
    const res = await client.post(`/api/v1/admin/users/${adminId}/runtime/start`);
    expect(res.status).toBe(403);
    expect(errorCode(res)).toBe('ADMIN_REQUIRED');
  });

  it('bad input gets clear errors: unknown user, malformed id, never-started runtime, stray body fields', async () => {
    const unknown = await admin.post('/api/v1/admin/users/00000000-0000-4000-8000-000000000000/runtime/start');
    expect(unknown.status).toBe(404);
    expect(errorCode(unknown)).toBe('USER_NOT_FOUND');
    const malformed = await admin.get('/api/v1/admin/users/not-an-id/runtime');
    expect(malformed.status).toBe(400);
    expect(errorCode(malformed)).toBe('VALIDATION_FAILED');
    const { client } = await member('gina');
    // The account's runtime exists (prepared with the account) but was never started: nothing to stop.
    const stop = await client.post('/api/v1/runtime/stop');
    expect(stop.status).toBe(200);
    expect(stop.body).toMatchObject({ operation: null, runtime: { state: 'absent' } });
    const logs = await client.get('/api/v1/runtime/logs');
    expect(errorCode(logs)).toBe('RUNTIME_NOT_CREATED');
    const stray = await client.post('/api/v1/runtime/start').send({ force: true });
    expect(stray.status).toBe(400);
    expect(errorCode(stray)).toBe('VALIDATION_FAILED');
    const anonymous = await h.bareClient().post('/api/v1/runtime/start');
    expect(anonymous.status).toBe(401);
  });
});

describe('whatever the agent leaves at openclaw.json, the next start writes a regular file with the platform keys', () => {
  const HOME = '/home/node/.openclaw';
  /** Runs a Node script as the runtime user inside the container, as an agent with a shell would. */
  const asAgent = async (containerId: string, script: string) => {
    const result = await execIn(containerId, ['node', '-e', `const fs=require('fs'),p=require('path');const H='${HOME}';${script}`]);
    expect(result).toMatchObject({ exitCode: 0, stderr: '' });
    return result.stdout;
  };
  const restart = async (client: TestAgent) => {
    const res = await client.post('/api/v1/runtime/restart');
    await h.platform.runtimes.settled(res.body.runtime.id);
    expect((await client.get('/api/v1/runtime')).body).toMatchObject({ state: 'running', lastError: null });
  };
  /** The config's entry and the entries kept aside, as lstat sees them. */
  const entries = (containerId: string) =>
    asAgent(
      containerId,
      `const out={};for(const n of fs.readdirSync(H).filter(n=>n.startsWith('openclaw.json'))){const s=fs.lstatSync(p.join(H,n));out[n]={kind:s.isSymbolicLink()?'symlink':s.isDirectory()?'folder':'file',uid:s.uid,link:s.isSymbolicLink()?fs.readlinkSync(p.join(H,n)):null,inode:s.ino}}process.stdout.write(JSON.stringify(out))`,
    ).then((text) => JSON.parse(text) as Record<string, { kind: string; uid: number; link: string | null; inode: number }>);
  const aside = (all: Record<string, { kind: string; inode: number }>, kind: string) => Object.entries(all).filter(([name, e]) => name.startsWith('openclaw.json.broken-') && e.kind === kind);

  it('a symbolic link is replaced, not followed: its target keeps its content and the link is kept aside', async () => {
    const { client } = await member('erin');
    await startAndWait(client);
    const id = (await containerOf(client)) ?? '';
    await asAgent(id, `fs.mkdirSync(p.join(H,'workspace'),{recursive:true});fs.writeFileSync(p.join(H,'workspace/notes.md'),'mine');fs.rmSync(p.join(H,'openclaw.json'));fs.symlinkSync(p.join(H,'workspace/notes.md'),p.join(H,'openclaw.json'))`);
    await restart(client);
    expect(await asAgent(id, `process.stdout.write(fs.readFileSync(p.join(H,'workspace/notes.md')))`)).toBe('mine');
    const all = await entries(id);
    expect(all['openclaw.json']).toMatchObject({ kind: 'file', uid: 1000 });
    expect(aside(all, 'symlink')).toEqual([[expect.any(String), expect.objectContaining({ link: `${HOME}/workspace/notes.md` })]]);
    const config = JSON.parse(await asAgent(id, `process.stdout.write(fs.readFileSync(p.join(H,'openclaw.json')))`));
    expect(config.gateway.auth).toMatchObject({ mode: 'trusted-proxy', trustedProxy: { allowUsers: ['erin'] } });
    expect(h.logs.text).toContain('it is a symbolic link, not a file');
  });

  it('an unparseable file is kept aside as it was (the same file, not a copy) and the runtime still starts', async () => {
    const { client } = await member('erin');
    const id = (await containerOf(client)) ?? '';
    await asAgent(id, `fs.rmSync(p.join(H,'openclaw.json'));fs.writeFileSync(p.join(H,'openclaw.json'),'{ gateway: { auth: { mode: "none" ')`);
    const before = (await entries(id))['openclaw.json']?.inode;
    await restart(client);
    const all = await entries(id);
    expect(all['openclaw.json']?.kind).toBe('file');
    const kept = aside(all, 'file').find(([, e]) => e.inode === before);
    expect(kept).toBeDefined();
    expect(await asAgent(id, `process.stdout.write(fs.readFileSync(p.join(H,${JSON.stringify(kept?.[0])})))`)).toBe('{ gateway: { auth: { mode: "none" ');
  });

  it('a folder in its place is copied aside and replaced by the file', async () => {
    const { client } = await member('erin');
    const id = (await containerOf(client)) ?? '';
    await asAgent(id, `fs.rmSync(p.join(H,'openclaw.json'));fs.mkdirSync(p.join(H,'openclaw.json/sub'),{recursive:true});fs.writeFileSync(p.join(H,'openclaw.json/sub/part.json5'),'{ a: 1 }')`);
    await restart(client);
    const all = await entries(id);
    expect(all['openclaw.json']?.kind).toBe('file');
    const [folder] = aside(all, 'folder');
    expect(folder).toBeDefined();
    expect(await asAgent(id, `process.stdout.write(fs.readFileSync(p.join(H,${JSON.stringify(folder?.[0])},'sub/part.json5')))`)).toBe('{ a: 1 }');
  });
});
