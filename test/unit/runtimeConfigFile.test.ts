/**
 * Reading the member's openclaw.json from the volume and writing the merged one back, at the
 * provisioner port we own: whatever sits at the config's path (nothing, a file, a link, a
 * folder, something huge or unreadable) never breaks a start, is never followed, and an
 * unusable entry is kept aside under a clear name. The real engine's side of it (links not
 * followed, hard links) is in test/integration/runtimeLifecycle.test.ts.
 */
import { Readable } from 'node:stream';
import { renderRuntime } from '../../src/runtime/runtimeSpec';
import { MAX_CONFIG_BYTES } from '../../src/runtime/memberConfig';
import { ConfigReadError, writeRuntimeConfig } from '../../src/runtime/runtimeConfigFile';
import type { RuntimeSettings } from '../../src/runtime/runtimeSettings';
import { runtimeSettingsFixture } from '../support/runtimeFixtures';
import { FakeProvisioner, type VolumeNode } from '../support/fakeProvisioner';

const settings: RuntimeSettings = runtimeSettingsFixture();
const rendered = renderRuntime({ runtimeId: 'r1', userId: 'u1', username: 'alice' }, settings, { trustedProxies: ['10.213.0.33'] }, { gatewayPassword: 'p'.repeat(20), modelKey: 'k'.repeat(20) });
const NOW = Date.parse('2026-12-06T02:15:31.123Z');
const ASIDE = 'openclaw.json.broken-2026-12-06T02-15-31Z';

let backend: FakeProvisioner;
let containerId: string;
let volume: Map<string, VolumeNode>;

beforeEach(async () => {
  backend = new FakeProvisioner();
  containerId = await backend.create(rendered.spec);
  volume = backend.dataOf(rendered.spec.owner.runtimeId);
});

const file = (text: string | Buffer): VolumeNode => ({ type: 'file', mode: 0o600, content: Buffer.from(text) });
const written = () => {
  const node = volume.get('openclaw.json');
  if (node?.type !== 'file') throw new Error(`openclaw.json is ${node?.type ?? 'missing'}`);
  return JSON.parse(node.content.toString('utf8')) as Record<string, unknown>;
};
const write = () => writeRuntimeConfig(backend, containerId, rendered, settings.models, NOW);

describe('runtime config file', () => {
  test('a fresh volume gets the platform config, owned by the runtime user, 0600', async () => {
    expect(await write()).toEqual({ outcome: 'platform', reset: [], setAsideAs: null, reason: null });
    expect(written()).toEqual(rendered.openclawConfig);
    const entry = backend.instances.get(containerId)?.files.find((f) => f.path === '.openclaw/openclaw.json');
    expect(entry).toMatchObject({ type: 'file', mode: 0o600, uid: 1000, gid: 1000 });
  });

  test('OpenClaw\'s backup, which it restores over a config that looks clobbered, gets the same content as the config', async () => {
    const planted = { ...rendered.openclawConfig, gateway: { mode: 'local', auth: { mode: 'none' } } };
    volume.set('openclaw.json.bak', file(JSON.stringify(planted)));
    volume.set('openclaw.json', file(JSON.stringify({ ui: { seamColor: '#00ff00' } })));
    await write();
    const backup = volume.get('openclaw.json.bak');
    expect(backup?.type === 'file' && JSON.parse(backup.content.toString('utf8'))).toEqual(written());
    expect(written()).toMatchObject({ gateway: rendered.openclawConfig.gateway, ui: { seamColor: '#00ff00' } });
  });

  test('an agent\'s edits to platform keys are undone at the next write; the member\'s settings stay', async () => {
    const agentEdited = { ...rendered.openclawConfig, ui: { seamColor: '#00ff00' } } as Record<string, unknown>;
    agentEdited.gateway = { ...(agentEdited.gateway as object), auth: { mode: 'none' } };
    agentEdited.models = { providers: { platform: { baseUrl: 'https://evil.example/v1' } } };
    volume.set('openclaw.json', file(JSON.stringify(agentEdited)));
    const result = await write();
    expect(result.outcome).toBe('merged');
    expect(result.reset).toEqual(expect.arrayContaining(['gateway.auth.mode', 'models.providers.platform.baseUrl']));
    expect(written()).toEqual({ ...rendered.openclawConfig, ui: { seamColor: '#00ff00' } });
  });

  test('an unparseable file is kept aside (same bytes) and the platform config written in its place', async () => {
    volume.set('openclaw.json', file('{ gateway: { auth: '));
    expect(await write()).toEqual({ outcome: 'set-aside', reset: [], setAsideAs: ASIDE, reason: 'it is not valid JSON5' });
    expect(written()).toEqual(rendered.openclawConfig);
    expect(volume.get(ASIDE)).toEqual(file('{ gateway: { auth: '));
  });

  test('a symbolic link is neither followed nor written through: it is kept aside as a link, its target untouched', async () => {
    volume.set('workspace/notes.md', file('# my notes'));
    volume.set('openclaw.json', { type: 'symlink', target: '/home/node/.openclaw/workspace/notes.md' });
    const result = await write();
    expect(result).toMatchObject({ outcome: 'set-aside', setAsideAs: ASIDE, reason: 'it is a symbolic link, not a file' });
    expect(volume.get('workspace/notes.md')).toEqual(file('# my notes'));
    expect(volume.get(ASIDE)).toEqual({ type: 'symlink', target: '/home/node/.openclaw/workspace/notes.md' });
    expect(written()).toEqual(rendered.openclawConfig);
  });

  test('a file over the size limit is not read; it is kept aside (hard link, no copy) and replaced', async () => {
    const huge = file(Buffer.alloc(MAX_CONFIG_BYTES + 1, 0x20));
    volume.set('openclaw.json', huge);
    expect(await write()).toMatchObject({ outcome: 'set-aside', setAsideAs: ASIDE, reason: expect.stringContaining('larger than') });
    expect(volume.get(ASIDE)).toBe(huge);
    expect(written()).toEqual(rendered.openclawConfig);
  });

  test('a folder in its place is copied aside (files and folders) and replaced by the file', async () => {
    volume.set('openclaw.json', { type: 'directory', mode: 0o755 });
    volume.set('openclaw.json/a.json5', file('{ a: 1 }'));
    volume.set('openclaw.json/sub', { type: 'directory', mode: 0o755 });
    volume.set('openclaw.json/sub/b.txt', file('b'));
    volume.set('openclaw.json/sub/link', { type: 'symlink', target: '/etc/passwd' });
    expect(await write()).toMatchObject({ outcome: 'set-aside', setAsideAs: ASIDE, reason: 'it is a folder, not a file' });
    expect(written()).toEqual(rendered.openclawConfig);
    expect([...volume.keys()].filter((k) => k.startsWith(ASIDE)).sort()).toEqual([ASIDE, `${ASIDE}/a.json5`, `${ASIDE}/sub`, `${ASIDE}/sub/b.txt`]);
    expect(volume.get(`${ASIDE}/sub/b.txt`)).toMatchObject({ type: 'file', content: Buffer.from('b') });
  });

  test('a folder too big to copy is replaced all the same, and the result says it was not kept', async () => {
    volume.set('openclaw.json', { type: 'directory', mode: 0o755 });
    volume.set('openclaw.json/big.bin', file(Buffer.alloc(MAX_CONFIG_BYTES + 1)));
    expect(await write()).toMatchObject({ outcome: 'set-aside', setAsideAs: null, reason: 'it is a folder, not a file' });
    expect(written()).toEqual(rendered.openclawConfig);
  });

  test('when the volume cannot be read, nothing is written (the member\'s settings are not thrown away)', async () => {
    volume.set('openclaw.json', file('{"ui": {"seamColor": "#00ff00"}}'));
    backend.readEntry = async () => Readable.from([Buffer.from('not a tar archive at all, just bytes'.padEnd(1024, '!'))]);
    await expect(write()).rejects.toBeInstanceOf(ConfigReadError);
    expect(volume.get('openclaw.json')).toEqual(file('{"ui": {"seamColor": "#00ff00"}}'));
    backend.readEntry = async () => {
      throw new Error('engine unreachable');
    };
    await expect(write()).rejects.toThrow('engine unreachable');
    expect(volume.get('openclaw.json')).toEqual(file('{"ui": {"seamColor": "#00ff00"}}'));
  });
});
