import type { RuntimeRepository } from '../db/repositories/runtimeRepository';
import type { Clock } from '../lib/clock';
import { isUp, type RuntimeStats } from './provisioner';
import type { FigureTargets, RuntimeFigures } from './runtimeFigures';
import type { RuntimeRegistry } from './runtimeRegistry';
import type { RuntimeView } from './runtimeViews';

export interface RuntimeListItem extends RuntimeView {
  uptimeSeconds: number | null;
  /** The latest CPU and memory figures the platform keeps of a running runtime; null before the first one. */
  stats: RuntimeStats | null;
  /** How old `stats` are, in seconds (null with no stats): the console says how fresh they are. */
  statsAgeSeconds: number | null;
  /** The last attempt to renew `stats` failed (engine unreachable or slow): they are the last known ones. */
  statsStale: boolean;
  /** The administrator who stopped it, while it stays stopped by them: for administrators' eyes (the list is theirs). */
  stoppedByAdmin: string | null;
}

/** The runtimes whose process is up, as the registry knows them: what the figures follow. */
export function registryTargets(runtimes: Pick<RuntimeRepository, 'list'>, registry: Pick<RuntimeRegistry, 'instance'>): FigureTargets {
  const upInstance = (runtimeId: string): string | null => {
    const instance = registry.instance(runtimeId);
    return instance && isUp(instance.phase) ? instance.id : null;
  };
  return {
    upInstance,
    up: () =>
      runtimes.list().flatMap((row) => {
        const instanceId = upInstance(row.id);
        return instanceId ? [{ runtimeId: row.id, instanceId }] : [];
      }),
  };
}

/**
 * The admin's overview: every runtime with its uptime and the figures kept in the background.
 * It answers from memory and the database only, never from the engine, so it costs the same with
 * an engine that is slow or away.
 */
export function listWithFigures(
  views: readonly RuntimeView[],
  figures: Pick<RuntimeFigures, 'figureOf'>,
  clock: Clock,
  stopActors: ReadonlyMap<string, string> = new Map(),
): RuntimeListItem[] {
  const now = clock.now();
  return views.map((view) => {
    const figure = view.id && view.startedAt ? figures.figureOf(view.id) : null;
    return {
      ...view,
      uptimeSeconds: view.startedAt ? Math.max(0, Math.round((now - Date.parse(view.startedAt)) / 1000)) : null,
      stats: figure?.stats ?? null,
      statsAgeSeconds: figure ? Math.round(figure.ageMs / 1000) : null,
      statsStale: figure?.stale ?? false,
      stoppedByAdmin: view.id && view.stoppedBy?.cause === 'admin' ? (stopActors.get(view.id) ?? null) : null,
    };
  });
}
