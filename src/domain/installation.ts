import { randomBytes, randomUUID } from 'node:crypto';
import type { SettingsRepository } from '../db/repositories/settingsRepository';

/**
 * Who this installation is, stored with its data: the instance name every container, network and
 * volume it makes is labelled with (only those are listed, adopted or swept), and an id no other
 * installation has, which claims that name on the engine.
 */
export interface Installation {
  instance: string;
  id: string;
}

const KEY = 'installation';
/** The name every installation had before names were stored: data directories from then keep it. */
export const LEGACY_INSTANCE = 'clawloops';

export class InstallationMismatchError extends Error {
  constructor(stored: string, configured: string) {
    super(
      `This data directory belongs to the instance "${stored}", but CLAWLOOPS_INSTANCE is "${configured}". ` +
        `Its runtimes, networks and volumes carry the name "${stored}": set CLAWLOOPS_INSTANCE=${stored} (or leave it unset), ` +
        'or use another data directory for another installation.',
    );
    this.name = 'InstallationMismatchError';
  }
}

const isInstallation = (value: unknown): value is Installation =>
  typeof value === 'object' && value !== null && typeof (value as Installation).instance === 'string' && typeof (value as Installation).id === 'string';

/**
 * The installation of this data directory, made on its first start. A new one without
 * CLAWLOOPS_INSTANCE gets a name of its own (clawloops-<6 hex>), so a second installation started
 * with default settings on an engine that runs one already never takes the first one's resources
 * for its own orphans. One that has data from before names were stored keeps `clawloops`, the
 * name its resources carry.
 */
export function resolveInstallation(settings: Pick<SettingsRepository, 'get' | 'set'>, configured: string | null, hasData: boolean, now: number): Installation {
  const stored = settings.get(KEY);
  if (isInstallation(stored)) {
    if (configured !== null && configured !== stored.instance) throw new InstallationMismatchError(stored.instance, configured);
    return stored;
  }
  const installation = { instance: configured ?? (hasData ? LEGACY_INSTANCE : `${LEGACY_INSTANCE}-${randomBytes(3).toString('hex')}`), id: randomUUID() };
  settings.set(KEY, installation, now);
  return installation;
}
