import { LABELS, type RuntimeBackend } from '../docker/runtimeBackend';
import { NO_ORIGIN, SYSTEM_ACTOR, type AuditLog } from '../domain/audit';
import type { Logger } from '../lib/logger';
import type { RuntimeManager } from './runtimeManager';

export interface AccountRuntimeHooksDeps {
  manager: RuntimeManager;
  backend: RuntimeBackend;
  audit: AuditLog;
  logger: Logger;
}

/** What happens to a user's runtime when their account is disabled or deleted. */
export class AccountRuntimeHooks {
  constructor(private readonly deps: AccountRuntimeHooksDeps) {}

  /** A disabled user's runtime stops; its data stays until the account is deleted. */
  userDisabled(userId: string): void {
    const { manager, logger } = this.deps;
    const runtimeId = manager.runtimeIdForUser(userId);
    if (!runtimeId) return;
    try {
      manager.stop({ ...SYSTEM_ACTOR, username: '(account disabled)' }, userId, NO_ORIGIN);
    } catch (err) {
      // RUNTIME_BUSY: an operation is in flight (a start refuses disabled users); stop once it ends.
      logger.warn({ userId, err: (err as Error).message }, 'could not stop the runtime of a disabled user yet');
      void manager.settled(runtimeId).then(() => {
        if (manager.runtimeIdForUser(userId)) this.userDisabled(userId);
      });
    }
  }

  /**
   * A deleted user's row (and its runtime row) is already gone: everything the engine still holds
   * for that user is found by label and removed, the data volume included.
   */
  async userDeleted(userId: string, username: string): Promise<{ containers: number; networks: number; volumes: number }> {
    const { manager, backend, logger, audit } = this.deps;
    const ours = (labels: Record<string, string>) => labels[LABELS.userId] === userId;
    const removed = { containers: 0, networks: 0, volumes: 0 };
    // An operation still running for this user could create something after the sweep below.
    await manager.settledForUser(userId);
    for (const container of (await backend.listManagedContainers()).filter((c) => ours(c.labels))) {
      await backend.removeContainer(container.id);
      const runtimeId = container.labels[LABELS.runtimeId];
      if (runtimeId) manager.containerGone(runtimeId, container.id);
      removed.containers++;
    }
    for (const network of (await backend.listManagedNetworks()).filter((n) => ours(n.labels))) {
      await backend.removeNetwork(network.name);
      removed.networks++;
    }
    for (const volume of (await backend.listManagedVolumes()).filter((v) => ours(v.labels))) {
      await backend.removeVolume(volume.name);
      removed.volumes++;
    }
    logger.info({ userId, username, ...removed }, 'removed the runtime resources of a deleted user');
    audit.record({
      action: 'runtime.purge',
      actor: { ...SYSTEM_ACTOR, username: '(account deleted)' },
      target: { type: 'user', id: userId, label: username },
      origin: NO_ORIGIN,
      detail: removed,
    });
    return removed;
  }
}
