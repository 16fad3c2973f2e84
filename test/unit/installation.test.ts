/**
 * The installation's identity, made on its first start and stored with its data: a new data
 * directory gets an instance name of its own unless one is configured, an old one keeps the name
 * its resources carry, and a configured name that contradicts the stored one is refused.
 */
import { InstallationMismatchError, LEGACY_INSTANCE, resolveInstallation } from '../../src/domain/installation';

const store = () => {
  const rows = new Map<string, unknown>();
  return { rows, settings: { get: (key: string) => rows.get(key), set: (key: string, value: unknown) => void rows.set(key, value) } };
};

test('a new data directory without CLAWLOOPS_INSTANCE gets a name no other installation has, and keeps it', () => {
  const a = store();
  const b = store();
  const first = resolveInstallation(a.settings, null, false, 0);
  const other = resolveInstallation(b.settings, null, false, 0);
  expect(first.instance).toMatch(/^clawloops-[0-9a-f]{6}$/);
  expect(other.instance).not.toBe(first.instance);
  expect(other.id).not.toBe(first.id);
  expect(resolveInstallation(a.settings, null, true, 1)).toEqual(first);
});

test('a data directory from before names were stored keeps "clawloops", the name its runtimes carry', () => {
  const { settings } = store();
  expect(resolveInstallation(settings, null, true, 0).instance).toBe(LEGACY_INSTANCE);
});

test('a configured name is taken and stored; the same name later is fine, another is refused with both names', () => {
  const { settings } = store();
  const installation = resolveInstallation(settings, 'team-a', false, 0);
  expect(installation.instance).toBe('team-a');
  expect(resolveInstallation(settings, 'team-a', true, 1)).toEqual(installation);
  expect(resolveInstallation(settings, null, true, 1)).toEqual(installation);
  expect(() => resolveInstallation(settings, 'team-b', true, 1)).toThrow(InstallationMismatchError);
  expect(() => resolveInstallation(settings, 'team-b', true, 1)).toThrow(/belongs to the instance "team-a".*CLAWLOOPS_INSTANCE is "team-b"/);
});
