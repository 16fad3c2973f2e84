import { NO_ORIGIN, SYSTEM_ACTOR, type AuditLog } from '../domain/audit';
import type { Logger } from '../lib/logger';
import type { RuntimeProvisioner } from './provisioner';
import type { RuntimeManager } from './runtimeManager';

export interface AccountRuntimeHooksDeps {
  manager: RuntimeManager;
  provisioner: RuntimeProvisioner;
  audit: AuditLog;
  logger: Logger;
}

/** What happens to a user's runtime when their account is disabled or deleted. */
export class AccountRuntimeHooks {
  constructor(private readonly deps: AccountRuntimeHooksDeps) {}

  /**
   * A new account's network and volume are made in the background, so its first start does not
   * pay for them; nothing here blocks or fails the account's creation.
   */
  userCreated(userId: string): void {
    try {
      this.deps.manager.prepareInBackground(userId);
    } catch (err) {
      this.deps.logger.warn({ userId, err: (err as Error).message }, 'could not begin preparing the runtime of a new user; their first start prepares it');
    }
  }

  /** A disabled user's runtime stops; its data stays until the account is deleted. */
  userDisabled(userId: string): void {
    const { manager, logger } = this.deps;
    const runtimeId = manager.runtimeIdForUser(userId);
    if (!runtimeId) return;
    try {
      manager.stop({ ...SYSTEM_ACTOR, username: '(account disabled)' }, userId, NO_ORIGIN, { cause: 'account_disabled' });
    } catch (err) {
      // RUNTIME_BUSY: an operation is in flight (a start refuses disabled users); stop once it ends.
      logger.warn({ userId, err: (err as Error).message }, 'could not stop the runtime of a disabled user yet');
      void manager.settled(runtimeId).then(() => {
        if (manager.runtimeIdForUser(userId)) this.userDisabled(userId);
      });
    }
  }

  /**
   * A deleted user's row (and its runtime row) is already gone: everything the provisioner still
   * holds for that user is found and removed, the data included.
   */
  async userDeleted(userId: string, username: string): Promise<{ containers: number; networks: number; volumes: number }> {
    const { manager, provisioner, logger, audit } = this.deps;
    // An operation still running for this user could create something after the sweep below.
    await manager.settledForUser(userId);
    const swept = await provisioner.removeEverythingOf(userId);
    for (const { runtimeId, instanceId } of swept.instances) manager.instanceGone(runtimeId, instanceId);
    const removed = { containers: swept.instances.length, networks: swept.places, volumes: swept.volumes };
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
