import type { SettingsSource } from '../lib/settingsStore';
import type { RuntimeRepository, RuntimeWithOwner } from '../db/repositories/runtimeRepository';
import type { UserRepository } from '../db/repositories/userRepository';
import type { Clock } from '../lib/clock';
import { notFound } from '../lib/errors';
import type { Observed, ObservedState } from './observedState';
import type { OperationView, RuntimeEventHub } from './operations';
import { isUp, type RuntimePlacement, type RuntimeProvisioner, type RuntimeStats } from './provisioner';
import type { RuntimeRegistry } from './runtimeRegistry';
import type { RuntimeSettings } from './runtimeSettings';
import { renderRuntime, workspaceAddresses, type RenderedRuntime, type RuntimeSecrets } from './runtimeSpec';
import { stoppedByView, stopSentence, type StoppedBy } from './stopCause';

export interface RuntimeView {
  id: string | null;
  userId: string;
  username: string;
  state: ObservedState;
  stateReason: string | null;
  desiredState: 'running' | 'stopped' | 'deleted';
  image: string | null;
  configuredImage: string;
  /** Held on this image instead of the configured one: an image rollout put it back here after the new one failed. */
  pinnedImage: string | null;
  /** The runtime runs another image than the configured one: it upgrades on its next restart. */
  outdatedImage: boolean;
  /** What is rendered now differs from what the runtime was started with. */
  configStale: boolean;
  createdAt: string | null;
  startedAt: string | null;
  workspaceUrl: string;
  limits: { memoryBytes: number; cpus: number; pidsLimit: number };
  lastError: { code: string; message: string; at: string } | null;
  /** Who or what stopped it and when, until it is started again. */
  stoppedBy: StoppedBy | null;
  operation: OperationView | null;
}

export interface RuntimeViewsDeps {
  runtimes: RuntimeRepository;
  users: UserRepository;
  provisioner: RuntimeProvisioner;
  registry: RuntimeRegistry;
  hub: RuntimeEventHub;
  clock: Clock;
  settings: SettingsSource<RuntimeSettings>;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
export const ownerOf = (runtime: RuntimeWithOwner) => ({ runtimeId: runtime.id, userId: runtime.userId, username: runtime.username });

/** A runtime rendered for its placement: what it would be if it were (re)created now. */
/** The settings a runtime starts with: the configured ones, on the image it is pinned to if any. */
export const settingsFor = (runtime: Pick<RuntimeWithOwner, 'pinnedImage'>, settings: Readonly<RuntimeSettings>): Readonly<RuntimeSettings> =>
  runtime.pinnedImage ? { ...settings, image: runtime.pinnedImage } : settings;

export const renderFor = (runtime: RuntimeWithOwner, settings: Readonly<RuntimeSettings>, placement: RuntimePlacement, secrets: RuntimeSecrets): RenderedRuntime =>
  renderRuntime(ownerOf(runtime), settings, placement, secrets);

/**
 * What members, administrators and the proxies read about runtimes. Everything here answers from
 * the registry and the database only (the request path of every proxied request goes through
 * `routeForUser`), except the one-shot figures of `stats`.
 */
export class RuntimeViews {
  constructor(private readonly deps: RuntimeViewsDeps) {}

  viewForUser(userId: string): RuntimeView {
    const runtime = this.deps.runtimes.findByUserId(userId);
    if (runtime) return this.view(runtime);
    const user = this.deps.users.findById(userId);
    if (!user) throw notFound('USER_NOT_FOUND', 'No user with this id.');
    return this.emptyView(user.id, user.username);
  }

  viewById(runtimeId: string): RuntimeView | null {
    const runtime = this.deps.runtimes.findById(runtimeId);
    return runtime ? this.view(runtime) : null;
  }

  listViews(): RuntimeView[] {
    return this.deps.runtimes.list().map((r) => this.view(r));
  }

  /**
   * Running runtimes started with another config or image than the one rendered now (e.g. the
   * model list changed): they pick it up only when restarted, because OpenClaw's hot reload cannot
   * be relied on past the first change.
   */
  staleRunning(): RuntimeView[] {
    return this.listViews().filter((view) => view.state === 'running' && (view.configStale || view.outdatedImage));
  }

  /** One runtime's figures, asked of the provisioner now (the member's own view; the admin's list uses RuntimeFigures). */
  async stats(runtimeId: string): Promise<RuntimeStats | null> {
    const instance = this.deps.registry.instance(runtimeId);
    if (!instance || !isUp(instance.phase)) return null;
    return this.deps.provisioner.stats(instance.id).catch(() => null);
  }

  /**
   * Where a user's workspace traffic goes right now: the runtime's URL while it runs and is
   * ready, else null. On the request path of every proxied request, so it reads only memory and one row.
   */
  routeForUser(userId: string): { runtimeId: string | null; url: string | null } {
    const runtime = this.deps.runtimes.findByUserId(userId);
    if (!runtime) return { runtimeId: null, url: null };
    const instance = this.deps.registry.instance(runtime.id);
    if (!instance || this.deps.registry.observed(runtime).state !== 'running') return { runtimeId: runtime.id, url: null };
    return { runtimeId: runtime.id, url: instance.url };
  }

  view(runtime: RuntimeWithOwner): RuntimeView {
    const { registry } = this.deps;
    const settings = settingsFor(runtime, this.deps.settings.get());
    const instance = registry.instance(runtime.id);
    const observed = registry.observed(runtime);
    const latest = this.deps.hub.latestOperation(runtime.id);
    return {
      ...this.emptyView(runtime.userId, runtime.username),
      id: runtime.id,
      state: observed.state,
      stateReason: this.stateReason(runtime, observed),
      desiredState: runtime.desiredState,
      image: instance?.image ?? null,
      outdatedImage: instance !== null && instance.image !== settings.image,
      pinnedImage: runtime.pinnedImage,
      configStale: instance !== null && instance.specHash !== this.expectedConfigHash(runtime),
      createdAt: iso(instance?.createdAt ?? null),
      startedAt: instance && isUp(instance.phase) ? iso(instance.startedAt) : null,
      lastError: runtime.lastError ? { ...runtime.lastError, at: new Date(runtime.lastError.at).toISOString() } : null,
      stoppedBy: runtime.stop ? stoppedByView(runtime.stop) : null,
      operation: latest?.snapshot ?? null,
    };
  }

  emptyView(userId: string, username: string): RuntimeView {
    const settings = this.deps.settings.get();
    return {
      id: null,
      userId,
      username,
      state: 'absent',
      stateReason: null,
      desiredState: 'deleted',
      image: null,
      configuredImage: settings.image,
      pinnedImage: null,
      outdatedImage: false,
      configStale: false,
      createdAt: null,
      startedAt: null,
      workspaceUrl: workspaceAddresses(settings).url(username),
      limits: { memoryBytes: settings.memoryBytes, cpus: settings.nanoCpus / 1e9, pidsLimit: settings.pidsLimit },
      lastError: null,
      stoppedBy: null,
      operation: null,
    };
  }

  /** A stopped runtime says who or what stopped it (the failure included); otherwise what the state says. */
  private stateReason(runtime: RuntimeWithOwner, observed: Observed): string | null {
    if (runtime.stop && (observed.state === 'stopped' || observed.state === 'failed')) return stopSentence(runtime.stop);
    return observed.state === 'failed' ? (runtime.lastError?.message ?? observed.reason) : observed.reason;
  }

  /** The hash the runtime would get if it were rendered now; the stored one while it has no placement. */
  private expectedConfigHash(runtime: RuntimeWithOwner): string | null {
    const placement = this.deps.registry.placement(runtime.id);
    if (!placement) return runtime.configHash;
    return renderFor(runtime, settingsFor(runtime, this.deps.settings.get()), placement, { gatewayPassword: '', modelKey: '' }).configHash;
  }
}
