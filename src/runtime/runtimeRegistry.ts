import type { RuntimeRepository, RuntimeWithOwner } from '../db/repositories/runtimeRepository';
import type { Clock } from '../lib/clock';
import { observe, type Observed } from './observedState';
import type { Operation, RuntimeEventHub } from './operations';
import { isUp, type RuntimeInstance, type RuntimePlacement, type RuntimeProvisioner } from './provisioner';

export interface RuntimeRegistryDeps {
  runtimes: RuntimeRepository;
  provisioner: RuntimeProvisioner;
  hub: RuntimeEventHub;
  clock: Clock;
}

/**
 * The platform's picture of what runs: the last known incarnation of each runtime, which of
 * them answered their readiness probe, each runtime's placement and the operation in flight on
 * it. Operations and the watcher write it; views read it without a round trip to the provisioner.
 */
export class RuntimeRegistry {
  /** Last known incarnation per runtime, refreshed by operations and by the watcher. */
  private readonly instances = new Map<string, RuntimeInstance | null>();
  private readonly readyInstances = new Set<string>();
  private readonly placements = new Map<string, RuntimePlacement>();
  /** Operations on one runtime never overlap: the one in flight, by runtime id. */
  readonly inFlight = new Map<string, Operation>();
  /** Runtimes the platform froze for a moment (a backup reading their volume): paused, yet running. */
  readonly frozen = new Set<string>();

  constructor(private readonly deps: RuntimeRegistryDeps) {}

  instance(runtimeId: string): RuntimeInstance | null {
    return this.instances.get(runtimeId) ?? null;
  }

  placement(runtimeId: string): RuntimePlacement | null {
    return this.placements.get(runtimeId) ?? null;
  }

  rememberPlacement(runtimeId: string, placement: RuntimePlacement): void {
    this.placements.set(runtimeId, placement);
  }

  forgetPlacement(runtimeId: string): void {
    this.placements.delete(runtimeId);
  }

  isBusy(runtimeId: string): boolean {
    return this.inFlight.has(runtimeId);
  }

  isReady(instanceId: string): boolean {
    return this.readyInstances.has(instanceId);
  }

  markReady(instanceId: string): void {
    this.readyInstances.add(instanceId);
  }

  markUnready(instanceId: string): void {
    this.readyInstances.delete(instanceId);
  }

  /** What the runtime is now, in the product's words. */
  observed(runtime: RuntimeWithOwner): Observed {
    const instance = this.instance(runtime.id);
    return observe({
      instance,
      readyConfirmed: instance !== null && this.readyInstances.has(instance.id),
      operation: this.inFlight.get(runtime.id) ?? null,
      desiredState: runtime.desiredState,
      lastErrorCode: runtime.lastError?.code ?? null,
      lastErrorMessage: runtime.lastError?.message ?? null,
      frozen: this.frozen.has(runtime.id),
    });
  }

  /** The owner of the runtime whose running incarnation has this address (how the egress proxy knows its caller). */
  ownerAt(address: string): RuntimeInstance['owner'] | null {
    for (const instance of this.instances.values()) {
      if (instance?.url && new URL(instance.url).hostname.replace(/^\[|\]$/g, '') === address) return instance.owner;
    }
    return null;
  }

  /** Remembers an incarnation without telling anyone (operations publish when their step is done). */
  remember(runtimeId: string, instance: RuntimeInstance): void {
    this.instances.set(runtimeId, instance);
  }

  /** Re-reads one incarnation from the provisioner; tells stream listeners if anything changed. */
  async refresh(runtimeId: string, instanceId: string): Promise<RuntimeInstance | null> {
    const instance = await this.deps.provisioner.inspect(instanceId);
    this.apply(runtimeId, instanceId, instance);
    return instance;
  }

  apply(runtimeId: string, instanceId: string, instance: RuntimeInstance | null): void {
    const known = this.instances.get(runtimeId);
    if (known && known.id !== instanceId && instance === null) return; // an older incarnation went away
    if (instance === null) this.forget(runtimeId, instanceId);
    else {
      this.instances.set(runtimeId, instance);
      // Frozen by the platform, it is still the same ready OpenClaw once thawed.
      if (!isUp(instance.phase) && !(instance.phase === 'paused' && this.frozen.has(runtimeId))) this.readyInstances.delete(instanceId);
    }
    this.deps.hub.publishState(runtimeId);
  }

  /** Takes over an incarnation found by the provisioner (start-up, after an engine restart). */
  adopt(runtimeId: string, instance: RuntimeInstance): void {
    this.deps.runtimes.setContainer(runtimeId, { containerId: instance.id, image: instance.image, configHash: instance.specHash }, this.deps.clock.now());
    this.apply(runtimeId, instance.id, instance);
  }

  /** The stored incarnation is gone (removed behind our back, or while we were down). */
  instanceGone(runtimeId: string, instanceId: string): void {
    const runtime = this.deps.runtimes.findById(runtimeId);
    if (runtime?.containerId === instanceId) this.deps.runtimes.setContainer(runtimeId, { containerId: null, modelKeyHash: null }, this.deps.clock.now());
    this.apply(runtimeId, instanceId, null);
  }

  forget(runtimeId: string, instanceId: string | null): void {
    const known = this.instances.get(runtimeId);
    if (!known || instanceId === null || known.id === instanceId) this.instances.delete(runtimeId);
    if (instanceId) this.readyInstances.delete(instanceId);
  }
}
