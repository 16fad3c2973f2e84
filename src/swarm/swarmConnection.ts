import type Docker from 'dockerode';
import type { Installation } from '../domain/installation';
import type { RuntimeFileTargets } from '../docker/fileHelpers';
import type { RuntimeBackend } from '../docker/runtimeBackend';
import type { SubnetPool } from '../docker/subnetPool';
import { planNetwork } from '../docker/networkPlan';
import { fileServerScript, nodeStatsServerScript } from '../files/agentScript';
import type { Logger } from '../lib/logger';
import type { SettingsSource } from '../lib/settingsStore';
import type { RuntimeSettings } from '../runtime/runtimeSettings';
import { SwarmEngine } from './swarmEngine';
import { SwarmFileAgents } from './swarmFileAgents';
import { SwarmNodeStats } from './swarmNodeStats';
import { SwarmRuntimeProvisioner } from './swarmRuntimeProvisioner';
import { SwarmWorkspaceVolumes } from './swarmWorkspaceVolumes';

export interface SwarmOptions {
  docker: Docker;
  /** The manager's own engine, for what only it can do (its volumes, pausing its tasks, the installation marker). */
  local: RuntimeBackend;
  instance: string;
  subnetPool: SubnetPool;
  installation: Installation;
  settings: SettingsSource<RuntimeSettings>;
  sharedVolumeOptions: Record<string, string> | null;
  memoryReservationShare: number;
  logger: Logger;
  /** How long an unused file agent, and the node-stats service, live. */
  fileAgentIdleMs: number;
  fileAgentNamePrefix?: string;
  pollMs?: number;
  idlePollMs?: number;
}

export interface SwarmConnection {
  engine: SwarmEngine;
  provisioner: SwarmRuntimeProvisioner;
  fileAgents: SwarmFileAgents;
  /** Runtime figures on every node; swept at start-up and closed at shutdown (server.ts). */
  nodeStats: SwarmNodeStats;
  volumes(targets: RuntimeFileTargets): SwarmWorkspaceVolumes;
}

/** Builds the swarm implementations of the runtime and workspace-volume ports on one manager's API. */
export function connectSwarm(options: SwarmOptions): SwarmConnection {
  const engine = new SwarmEngine(options.docker, options.instance, options.subnetPool);
  const fixed = options.settings.get();
  let provisioner: SwarmRuntimeProvisioner | null = null;
  const fileAgents = new SwarmFileAgents({
    engine,
    place: (owner) => {
      if (!provisioner) throw new Error('the swarm provisioner is not built yet');
      return provisioner.place(owner);
    },
    settings: options.settings,
    sharedVolumeOptions: options.sharedVolumeOptions,
    serverScript: fileServerScript,
    logger: options.logger.child({ component: 'files' }),
    idleMs: options.fileAgentIdleMs,
    ...(options.fileAgentNamePrefix ? { namePrefix: options.fileAgentNamePrefix } : {}),
  });
  const nodeStats = new SwarmNodeStats({
    engine,
    overlayName: `${options.instance}-node-stats`,
    join: async (overlay) => {
      if (!fixed.controlPlaneContainer) throw new Error('the control plane runs in no container: it cannot join the node-stats network');
      await options.local.connectToNetwork(overlay.id, fixed.controlPlaneContainer, { ipv4Address: planNetwork(overlay.subnet).controlPlane, aliases: [] });
    },
    settings: options.settings,
    serverScript: nodeStatsServerScript,
    logger: options.logger.child({ component: 'runtimes' }),
    idleMs: options.fileAgentIdleMs,
  });
  provisioner = new SwarmRuntimeProvisioner(
    engine,
    options.local,
    fileAgents,
    {
      routing: { addressing: fixed.addressing, traefik: fixed.traefik, router: fixed.router },
      router: fixed.router,
      controlPlaneContainer: fixed.controlPlaneContainer,
      sharedVolumeOptions: options.sharedVolumeOptions,
      memoryReservationShare: options.memoryReservationShare,
      pollMs: options.pollMs ?? 1_000,
      idlePollMs: options.idlePollMs ?? 5_000,
      runtimeMemoryBytes: () => options.settings.get().memoryBytes,
    },
    options.logger.child({ component: 'runtimes' }),
    options.installation,
    nodeStats,
  );
  return { engine, provisioner, fileAgents, nodeStats, volumes: (targets) => new SwarmWorkspaceVolumes(fileAgents, targets) };
}
