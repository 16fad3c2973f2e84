/**
 * Traefik cannot run on our machines (no image, no registry), so its contract with the control
 * plane is tested on the real engine instead: the labels on a real runtime container parse to
 * the intended router, rule, service and middleware; a container labelled as the installation's
 * Traefik is attached to every runtime network at its fixed address, can reach the runtime
 * there, and is trusted by exactly that address; runtimes still cannot reach each other.
 * The forward-auth endpoint's answers are tested in test/http/workspaceAccess.test.ts.
 */
import type TestAgent from 'supertest/lib/agent';
import { runtimeNames } from '../../src/docker/runtimeContainer';
import { docker, engineHarness, execIn, newInstanceId, STANDIN_IMAGE, sweep, withDiagnostics, type EngineHarness } from '../support/engine';

jest.setTimeout(60_000);

const instance = newInstanceId();
let h: EngineHarness;
let admin: TestAgent;
let traefikId: string;
const it = (name: string, body: () => Promise<void>) => test(name, withDiagnostics(() => instance, () => h.logs.text, body));

interface ParsedRouting {
  enabled: boolean;
  network: string | undefined;
  routers: Record<string, Record<string, string>>;
  services: Record<string, Record<string, string>>;
}

/** Reads `traefik.*` labels the way Traefik's Docker provider groups them. */
function parseTraefikLabels(labels: Record<string, string>): ParsedRouting {
  const parsed: ParsedRouting = { enabled: labels['traefik.enable'] === 'true', network: labels['traefik.docker.network'], routers: {}, services: {} };
  for (const [key, value] of Object.entries(labels)) {
    const match = /^traefik\.http\.(routers|services)\.([^.]+)\.(.+)$/.exec(key);
    if (!match?.[1] || !match[2] || !match[3]) continue;
    const group = parsed[match[1] as 'routers' | 'services'];
    group[match[2]] = { ...group[match[2]], [match[3]]: value };
  }
  return parsed;
}

async function startFor(username: string): Promise<{ runtimeId: string; containerId: string; address: string; network: string }> {
  const { client } = await h.createMember(admin, username);
  const res = await client.post('/api/v1/runtime/start');
  await h.platform.runtimes.settled(res.body.runtime.id);
  const runtimeId = res.body.runtime.id as string;
  const row = h.platform.db.prepare('SELECT container_id FROM runtimes WHERE id = ?').get(runtimeId) as { container_id: string };
  const network = runtimeNames(runtimeId).network;
  const info = await docker.getContainer(row.container_id).inspect();
  return { runtimeId, containerId: row.container_id, address: info.NetworkSettings.Networks[network]?.IPAddress ?? '', network };
}

const fetchFrom = (containerId: string, url: string) =>
  execIn(containerId, ['node', '-e', `fetch(${JSON.stringify(url)}, { signal: AbortSignal.timeout(2000) }).then(r => console.log(r.status), e => { console.log('unreachable'); })`]);

beforeAll(async () => {
  // A stand-in for the appliance's Traefik container: found by its labels, like the real one.
  const traefik = await docker.createContainer({
    name: `${instance}-traefik`,
    Image: STANDIN_IMAGE,
    Labels: { 'io.clawloops.instance': instance, 'io.clawloops.proxy': 'traefik' },
    Healthcheck: { Test: ['NONE'] },
    HostConfig: { Init: true },
  });
  await traefik.start();
  traefikId = traefik.id;
  h = engineHarness({ instance, env: { CLAWLOOPS_ROUTER: 'traefik', CLAWLOOPS_DOMAIN: 'claw.example.com', CLAWLOOPS_PUBLIC_URL: 'http://claw.example.com' } });
  ({ client: admin } = await h.setupAdmin());
});

afterAll(async () => {
  h.platform.watcher.close();
  await h.platform.runtimes.drain(10_000);
  h.close();
  await sweep(instance);
});

it("a runtime container's labels parse to one router for its host, through forward-auth, to port 18789 on its own network", async () => {
  const alice = await startFor('alice');
  const labels = (await docker.getContainer(alice.containerId).inspect()).Config.Labels;
  const routing = parseTraefikLabels(labels);
  const name = `clawloops-rt-${alice.runtimeId}`;
  expect(routing).toEqual({
    enabled: true,
    network: alice.network,
    routers: {
      [name]: { rule: 'Host(`alice.claw.example.com`)', entrypoints: 'web', middlewares: 'clawloops-auth@docker', service: name },
      // WebSocket upgrades go to the control plane's service (docker-compose.yml), which checks and proxies them.
      [`${name}-ws`]: { rule: 'Host(`alice.claw.example.com`) && HeaderRegexp(`Upgrade`, `(?i)^websocket$`)', entrypoints: 'web', service: 'clawloops@docker' },
    },
    services: { [name]: { 'loadbalancer.server.port': '18789' } },
  });
  // Traefik's constraint selects the installation's containers by this label.
  expect(labels['io.clawloops.instance']).toBe(instance);
});

it('the Traefik container joins the runtime network at its fixed address, reaches the runtime there, and is the proxy the runtime trusts', async () => {
  const alice = await startFor('carol');
  const network = await docker.getNetwork(alice.network).inspect();
  const subnet = network.IPAM?.Config?.[0]?.Subnet ?? '';
  const prefix = subnet.split('.').slice(0, 3).join('.');
  const base = Number(subnet.split('.')[3]?.split('/')[0]);
  const traefikInfo = await docker.getContainer(traefikId).inspect();
  expect(traefikInfo.NetworkSettings.Networks[alice.network]?.IPAddress).toBe(`${prefix}.${base + 3}`);
  expect((await fetchFrom(traefikId, `http://${alice.address}:18789/healthz`)).stdout.trim()).toBe('200');

  const config = JSON.parse((await execIn(alice.containerId, ['node', '-e', "process.stdout.write(require('fs').readFileSync('/home/node/.openclaw/openclaw.json'))"])).stdout);
  // The control plane runs on the host here (the gateway address) and Traefik at its fixed one: nothing else.
  expect(config.gateway.trustedProxies).toEqual([`${prefix}.${base + 1}`, `${prefix}.${base + 3}`]);
});

it('a re-created Traefik (which lost the runtime networks) is attached again by the watcher', async () => {
  const dave = await startFor('dave');
  await docker.getNetwork(dave.network).disconnect({ Container: traefikId, Force: true });
  expect((await docker.getContainer(traefikId).inspect()).NetworkSettings.Networks[dave.network]).toBeUndefined();
  await h.platform.watcher.reattachProxies();
  const address = (await docker.getContainer(traefikId).inspect()).NetworkSettings.Networks[dave.network]?.IPAddress ?? '';
  expect(address.split('.')[3]).toBe(String(Number((await docker.getNetwork(dave.network).inspect()).IPAM?.Config?.[0]?.Subnet?.split('.')[3]?.split('/')[0]) + 3));
});

it('runtimes still cannot reach each other, though Traefik reaches both', async () => {
  const erin = await startFor('erin');
  const frank = await startFor('frank');
  expect((await fetchFrom(erin.containerId, `http://${frank.address}:18789/healthz`)).stdout.trim()).toBe('unreachable');
  expect((await fetchFrom(traefikId, `http://${frank.address}:18789/healthz`)).stdout.trim()).toBe('200');
  expect((await fetchFrom(traefikId, `http://${erin.address}:18789/healthz`)).stdout.trim()).toBe('200');
});
