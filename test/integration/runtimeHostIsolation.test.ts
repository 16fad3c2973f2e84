/**
 * The host behind a runtime, tried from inside the runtime on the REAL engine. An internal
 * network has no route beyond its subnet, but the host holds the subnet's gateway address, and
 * through it a runtime reached every host service listening on all addresses (and the engine's
 * name server forwarded its lookups out from the runtime's namespace). With the control plane in
 * a container (the appliance), runtime networks give the host no address at all: only what is
 * attached to the network answers. A control plane on the host keeps the address (it needs it),
 * and the first test shows what that costs.
 */
import dgram from 'node:dgram';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import type TestAgent from 'supertest/lib/agent';
import { LABELS } from '../../src/docker/runtimeBackend';
import { PROBE_CLIENT_ADDRESS } from '../../src/runtime/readinessProbe';
import { docker, engineHarness, execIn, newInstanceId, STANDIN_IMAGE, sweep, withDiagnostics, type EngineHarness } from '../support/engine';

jest.setTimeout(180_000);

const instance = newInstanceId();
/** A service on the host listening on every address (IPv4 and IPv6), as a database or an admin page would. */
let hostService: net.Server;
let hostPort: number;
/** A UDP service on the host, and what reached it. */
let hostUdp: dgram.Socket;
let hostUdpPort: number;
const udpSeen: string[] = [];
/** Stands in for the control plane container: attached to every runtime network at its fixed address. */
const CONTROL_PLANE = `${instance}-control-plane`;
const CONTROL_PLANE_PORT = 7311;

/** Host addresses a runtime might try: every IPv4 address of the host's own interfaces. */
const hostAddresses = () =>
  Object.values(os.networkInterfaces())
    .flat()
    .filter((a): a is os.NetworkInterfaceInfo => a !== undefined && a.family === 'IPv4' && !a.internal)
    .map((a) => a.address);

/** From inside a container: which of `targets` accept a TCP connection within 1.5 s. */
const reachable = (targets: string[]) =>
  `const net=require('net');const t=${JSON.stringify(targets)};let left=t.length;const ok=[];
   if(!left){console.log('[]')}
   for(const a of t){const [h,p]=a.split(' ');const s=net.connect({host:h,port:Number(p)});s.setTimeout(1500);
     const done=(y)=>{if(y)ok.push(a);s.destroy();if(--left===0)console.log(JSON.stringify(ok))};
     s.once('connect',()=>done(true));s.once('timeout',()=>done(false));s.once('error',()=>done(false))}`;

/** One name lookup from inside, through the engine's name server. */
const lookup = `require('dns').lookup('probe.clawloops-test.example',(e,a)=>console.log(e?e.code:a))`;

let h: EngineHarness;
let admin: TestAgent;

async function startedRuntime(harness: EngineHarness, client: TestAgent): Promise<{ containerId: string; gateway: string }> {
  const res = await client.post('/api/v1/runtime/start');
  await harness.platform.runtimes.settled(res.body.runtime.id);
  expect((await client.get('/api/v1/runtime')).body.state).toBe('running');
  const row = harness.platform.db.prepare('SELECT container_id FROM runtimes WHERE id = ?').get(res.body.runtime.id) as { container_id: string };
  const info = await docker.getContainer(row.container_id).inspect();
  const [networkName] = Object.keys(info.NetworkSettings.Networks);
  const network = await docker.getNetwork(networkName ?? '').inspect();
  return { containerId: row.container_id, gateway: network.IPAM?.Config?.[0]?.Gateway ?? '' };
}

const it = (name: string, body: () => Promise<void>) => test(name, withDiagnostics(() => instance, () => h.logs.text, body));

beforeAll(async () => {
  hostService = net.createServer((socket) => {
    // Probes hang up as soon as they are connected.
    socket.on('error', () => undefined);
    socket.end('host service\n');
  });
  await new Promise<void>((resolve) => hostService.listen(0, '::', resolve));
  hostPort = (hostService.address() as AddressInfo).port;
  hostUdp = dgram.createSocket('udp4');
  hostUdp.on('message', (message) => udpSeen.push(String(message)));
  await new Promise<void>((resolve) => hostUdp.bind(0, '0.0.0.0', resolve));
  hostUdpPort = hostUdp.address().port;
  await docker.createNetwork({ Name: `${CONTROL_PLANE}-own`, Internal: true, Labels: { [LABELS.instance]: instance } });
  const controlPlane = await docker.createContainer({
    name: CONTROL_PLANE,
    Image: STANDIN_IMAGE,
    User: '1000:1000',
    Entrypoint: ['node', '-e', `require('net').createServer(s=>s.end('control plane')).listen(${CONTROL_PLANE_PORT})`],
    Labels: { [LABELS.instance]: instance },
    HostConfig: { NetworkMode: `${CONTROL_PLANE}-own` },
  });
  await controlPlane.start();
  h = engineHarness({
    instance,
    runtimeSettings: { controlPlaneContainer: CONTROL_PLANE },
    // The host has no address on the runtime's network, so this process cannot reach the runtime
    // either: readiness is asked from where a containerised control plane asks it.
    runtimeProbe: {
      async status(baseUrl, path, timeoutMs) {
        const script = `require('http').get(${JSON.stringify(new URL(path, baseUrl).href)},{timeout:${timeoutMs},headers:{'x-forwarded-for':'${PROBE_CLIENT_ADDRESS}'}},r=>{console.log(r.statusCode);process.exit(0)}).on('error',()=>{console.log(0);process.exit(0)}).on('timeout',function(){this.destroy()})`;
        const status = Number((await execIn(CONTROL_PLANE, ['node', '-e', script])).stdout.trim());
        return status > 0 ? status : null;
      },
    },
  });
  ({ client: admin } = await h.setupAdmin());
});

afterAll(async () => {
  await h.platform.runtimes.drain(30_000);
  h.close();
  await new Promise((resolve) => hostService.close(resolve));
  hostUdp.close();
  await sweep(instance);
});

it('with the control plane on the host, a runtime reaches host services through its gateway (why the appliance takes the address away)', async () => {
  const hostMode = engineHarness({ instance: `${instance}-host`, runtimeSettings: { controlPlaneContainer: null } });
  try {
    const { client: hostAdmin } = await hostMode.setupAdmin();
    const runtime = await startedRuntime(hostMode, hostAdmin);
    const out = await execIn(runtime.containerId, ['node', '-e', reachable([`${runtime.gateway} ${hostPort}`])]);
    expect(JSON.parse(out.stdout)).toEqual([`${runtime.gateway} ${hostPort}`]);
    // UDP gets there too (what the appliance's check below would see if the path were open).
    await execIn(runtime.containerId, ['node', '-e', `const s=require('dgram').createSocket('udp4');s.send('host mode',${hostUdpPort},'${runtime.gateway}',()=>process.exit(0))`]);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(udpSeen.splice(0)).toEqual(['host mode']);
  } finally {
    await hostMode.platform.runtimes.drain(30_000);
    hostMode.close();
    await sweep(`${instance}-host`);
  }
});

it('with the control plane in a container, a runtime reaches it and nothing of the host: not the gateway, no host address (TCP, UDP, IPv6), no name server', async () => {
  const runtime = await startedRuntime(h, admin);
  const network = await docker.getNetwork(`${(await docker.getContainer(runtime.containerId).inspect()).HostConfig.NetworkMode}`).inspect();
  expect(network.Internal).toBe(true);
  expect(network.Options).toMatchObject({ 'com.docker.network.bridge.inhibit_ipv4': 'true' });

  const hostTargets = [runtime.gateway, ...hostAddresses()].map((address) => `${address} ${hostPort}`);
  const out = await execIn(runtime.containerId, ['node', '-e', reachable([...hostTargets, `clawloops-control-plane ${CONTROL_PLANE_PORT}`])]);
  // The control plane answers (the network works, by its name), nothing on the host does.
  expect(JSON.parse(out.stdout)).toEqual([`clawloops-control-plane ${CONTROL_PLANE_PORT}`]);
  // The same host service answers from the host itself: the path is missing, not the service.
  const fromHost = await new Promise<string>((resolve, reject) => {
    const socket = net.connect(hostPort, '127.0.0.1');
    socket.once('data', (data) => resolve(String(data)));
    socket.on('error', reject);
  });
  expect(fromHost).toBe('host service\n');

  // The runtime still routes through the gateway address, but no one holds it: the host has no
  // address on the bridge (none of its interfaces carries it).
  expect(hostAddresses()).not.toContain(runtime.gateway);

  // UDP to the same addresses: nothing arrives.
  const udpTargets = [runtime.gateway, ...hostAddresses()];
  await execIn(runtime.containerId, ['node', '-e', `const s=require('dgram').createSocket('udp4');const t=${JSON.stringify(udpTargets)};let n=t.length;for(const a of t)s.send('from the runtime',${hostUdpPort},a,()=>{if(--n===0)setTimeout(()=>process.exit(0),500)})`]);
  await new Promise((resolve) => setTimeout(resolve, 500));
  expect(udpSeen).toEqual([]);

  // IPv6: the bridge has a link-local address on the host, but the runtime has no IPv6 at all.
  const bridge = `br-${network.Id.slice(0, 12)}`;
  const linkLocal = os.networkInterfaces()[bridge]?.find((a) => a.family === 'IPv6')?.address;
  const ipv6 = await execIn(runtime.containerId, ['node', '-e', `console.log(JSON.stringify(require('fs').readFileSync('/proc/net/if_inet6','utf8')));${linkLocal ? `const s=require('net').connect({host:'${linkLocal}%eth0',port:${hostPort}});s.setTimeout(1500,()=>{console.log('timeout');process.exit(0)});s.on('connect',()=>{console.log('connected');process.exit(0)});s.on('error',e=>{console.log(e.code);process.exit(0)})` : ''}`]);
  const [addresses, attempt] = ipv6.stdout.trim().split('\n');
  expect(JSON.parse(addresses ?? '""')).toBe('');
  if (linkLocal) expect(attempt).not.toBe('connected');
  // So the engine's name server, which forwards from the runtime's namespace, reaches no name server.
  expect(['EAI_AGAIN', 'ENOTFOUND']).toContain((await execIn(runtime.containerId, ['node', '-e', lookup])).stdout.trim());
});
