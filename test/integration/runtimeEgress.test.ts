/**
 * Isolation and egress of runtimes on the REAL engine, tried from inside a runtime as its agent
 * would: other runtimes and anything beyond the host are unreachable directly, also in the
 * moments when the engine rewires its firewall (any network created or removed); the way out is
 * the control plane's egress proxy, which knows the runtime by its address and applies the
 * policy. Stand-in runtimes (Node 20) run the probes.
 */
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import type TestAgent from 'supertest/lib/agent';
import { LABELS } from '../../src/docker/runtimeBackend';
import { docker, engineHarness, execIn, newInstanceId, sweep, withDiagnostics, type EngineHarness } from '../support/engine';
import { freePort } from '../support/processes';

jest.setTimeout(180_000);

const instance = newInstanceId();
let h: EngineHarness;
let admin: TestAgent;
let egressPort: number;
/** "The world": a TCP echo server on the host, reached only through the proxy. */
let world: net.Server;
let worldPort: number;
const worldPeers: string[] = [];
/** A server in a container on an ordinary (routable) network: beyond the runtime's network. */
let outsideIp = '';
const OUTSIDE_NETWORK = `${instance}-outside`;

const it = (name: string, body: () => Promise<void>) => test(name, withDiagnostics(() => instance, () => h.logs.text, body));

beforeAll(async () => {
  egressPort = await freePort();
  h = engineHarness({
    instance,
    env: { CLAWLOOPS_EGRESS_ALLOW: '127.0.0.1' },
    runtimeSettings: { egressProxyUrl: `http://host.docker.internal:${egressPort}` },
  });
  await h.platform.egress.listen(egressPort, '0.0.0.0');
  await h.platform.watcher.start();
  ({ client: admin } = await h.setupAdmin());
  world = net.createServer((socket) => {
    worldPeers.push(socket.remoteAddress ?? '');
    socket.pipe(socket);
    socket.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve) => world.listen(0, '0.0.0.0', resolve));
  worldPort = (world.address() as AddressInfo).port;

  await docker.createNetwork({ Name: OUTSIDE_NETWORK, Labels: { [LABELS.instance]: instance } });
  const outside = await docker.createContainer({
    name: `${instance}-outside-server`,
    Image: 'clawloops/runtime-standin:1',
    Entrypoint: ['node', '-e', "require('net').createServer(s=>s.end('outside')).listen(7000)"],
    Labels: { [LABELS.instance]: instance },
    HostConfig: { NetworkMode: OUTSIDE_NETWORK },
  });
  await outside.start();
  outsideIp = (await outside.inspect()).NetworkSettings.Networks[OUTSIDE_NETWORK]?.IPAddress ?? '';
});

afterAll(async () => {
  await h.platform.egress.close();
  h.platform.watcher.close();
  await h.platform.runtimes.drain(30_000);
  h.close();
  await new Promise((resolve) => world.close(resolve));
  await sweep(instance);
});

async function runningRuntime(username: string): Promise<{ containerId: string; ip: string }> {
  const { client } = await h.createMember(admin, username);
  const res = await client.post('/api/v1/runtime/start');
  await h.platform.runtimes.settled(res.body.runtime.id);
  expect((await client.get('/api/v1/runtime')).body.state).toBe('running');
  const row = h.platform.db.prepare('SELECT container_id FROM runtimes WHERE id = ?').get(res.body.runtime.id) as { container_id: string };
  const info = await docker.getContainer(row.container_id).inspect();
  return { containerId: row.container_id, ip: Object.values(info.NetworkSettings.Networks)[0]?.IPAddress ?? '' };
}

/** Tries `host:port` from inside a runtime until `ms` ran out; prints how many attempts connected. */
const probeLoop = (host: string, port: number, ms: number) =>
  `const net=require('net');let ok=0,n=0;const end=Date.now()+${ms};
   function once(){if(Date.now()>end){console.log(JSON.stringify({ok,n}));return}n++;
   const s=net.connect({host:'${host}',port:${port}});s.setTimeout(250);
   s.on('connect',()=>{ok++;s.destroy();once()});s.on('timeout',()=>{s.destroy();once()});s.on('error',()=>once())}
   once()`;

/** A CONNECT through the proxy named in the runtime's own HTTPS_PROXY, then one round trip. */
const throughProxy = (target: string) =>
  `const net=require('net');const p=new URL(process.env.HTTPS_PROXY);
   const s=net.connect({host:p.hostname,port:Number(p.port)},()=>s.write('CONNECT ${target} HTTP/1.1\\r\\nHost: ${target}\\r\\n\\r\\n'));
   let buf='';s.setTimeout(10000,()=>{console.log(JSON.stringify({status:0}));process.exit(0)});
   s.on('data',d=>{buf+=d;const i=buf.indexOf('\\r\\n\\r\\n');if(i<0)return;const status=Number(buf.slice(9,12));
     if(status===200){s.removeAllListeners('data');s.once('data',r=>{console.log(JSON.stringify({status,reply:String(r)}));process.exit(0)});s.write('ping')}
     else s.on('end',()=>{console.log(JSON.stringify({status,body:buf.slice(i+4)}));process.exit(0)})});
   s.on('error',e=>{console.log(JSON.stringify({status:-1,error:e.code}));process.exit(0)})`;

describe('isolation', () => {
  it("a runtime never reaches another runtime, also while the engine's networks are being created and removed", async () => {
    const alice = await runningRuntime('alice');
    const bruno = await runningRuntime('bruno');
    // Every create or remove makes the engine unhook and re-hook its isolation rules; a
    // routable bridge let 74 of 208 tries through in such moments, measured on this machine.
    let churning = true;
    const churn = (async () => {
      let i = 0;
      while (churning) {
        const network = await docker.createNetwork({ Name: `${instance}-churn-${i++}`, Labels: { [LABELS.instance]: instance } });
        await network.remove();
      }
      return i;
    })();
    const probe = await execIn(alice.containerId, ['node', '-e', probeLoop(bruno.ip, 18789, 8_000)]);
    churning = false;
    const churned = await churn;
    const result = JSON.parse(probe.stdout) as { ok: number; n: number };
    expect(churned).toBeGreaterThan(3);
    expect(result.n).toBeGreaterThan(5);
    expect(result.ok).toBe(0);
  });

  it('a runtime reaches nothing beyond the host directly (a server on an ordinary network here)', async () => {
    const alice = await runningRuntime('carol');
    const probe = await execIn(alice.containerId, ['node', '-e', probeLoop(outsideIp, 7000, 2_000)]);
    expect(JSON.parse(probe.stdout)).toMatchObject({ ok: 0 });
    // The same server from the host answers: it is the route that is missing, not the server.
    const fromHost = await new Promise<string>((resolve, reject) => {
      const s = net.connect(7000, outsideIp);
      s.once('data', (d) => resolve(String(d)));
      s.once('error', reject);
    });
    expect(fromHost).toBe('outside');
  });
});

describe('the egress proxy', () => {
  it('is the way out: an allowed destination answers through it, and it saw the runtime as the member it belongs to', async () => {
    const dora = await runningRuntime('dora');
    const env = (await docker.getContainer(dora.containerId).inspect()).Config.Env;
    expect(env).toEqual(
      expect.arrayContaining([
        `HTTPS_PROXY=http://host.docker.internal:${egressPort}`,
        `http_proxy=http://host.docker.internal:${egressPort}`,
        'NODE_USE_ENV_PROXY=1',
        expect.stringMatching(/^NO_PROXY=.*host\.docker\.internal/),
      ]),
    );
    const out = await execIn(dora.containerId, ['node', '-e', throughProxy(`127.0.0.1:${worldPort}`)]);
    expect(JSON.parse(out.stdout)).toEqual({ status: 200, reply: 'ping' });
    // The proxy dialled from the host: the world never sees the runtime's own address.
    expect(worldPeers.at(-1)).toMatch(/127\.0\.0\.1$/);
    expect(h.platform.runtimes.ownerAtAddress(dora.ip)).toMatchObject({ username: 'dora' });
  });

  it('refuses private, loopback and metadata addresses it was not told to allow, with a reason the agent can show', async () => {
    const erin = await runningRuntime('erin');
    const before = worldPeers.length;
    for (const target of [`127.0.0.3:${worldPort}`, '169.254.169.254:80', `${outsideIp}:7000`]) {
      const out = JSON.parse((await execIn(erin.containerId, ['node', '-e', throughProxy(target)])).stdout) as { status: number; body: string };
      expect({ target, status: out.status }).toEqual({ target, status: 403 });
      expect(JSON.parse(out.body).error).toMatchObject({ code: 'EGRESS_DENIED', message: expect.stringContaining('private') });
    }
    expect(worldPeers.length).toBe(before);
  });

  it('serves runtimes only: the host itself, or anything else that is not a running runtime, is refused', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: egressPort, method: 'CONNECT', path: `127.0.0.1:${worldPort}` });
      req.on('connect', (res, socket) => {
        socket.destroy();
        resolve(res.statusCode ?? 0);
      });
      req.on('response', (res) => resolve(res.statusCode ?? 0));
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(403);
  });
});
