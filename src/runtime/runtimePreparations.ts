import type { Logger } from '../lib/logger';
import { Semaphore } from '../lib/semaphore';
import type { RuntimeOwner, RuntimePlacement, RuntimeProvisioner } from './provisioner';

/** Background preparations at once: they make networks and volumes nobody is waiting for yet. */
const BACKGROUND_LIMIT = 2;

export interface BackgroundPreparation {
  /** Asked right before the provisioner is called: false skips it (the account was deleted, the runtime removed). */
  stillWanted(): boolean;
  /** The placement the preparation made, for the registry. */
  onPrepared(placement: RuntimePlacement): void;
}

/**
 * Makes a runtime's own resources (`provisioner.prepare`) ready, one preparation per runtime at a
 * time: a start joins the one in flight (a new account's, begun in the background when it was
 * created) instead of racing it to create the same network twice. Background preparations queue
 * behind a small limit; a start never waits in that queue, it prepares at once.
 */
export class RuntimePreparations {
  private readonly inFlight = new Map<string, { userId: string; done: Promise<RuntimePlacement> }>();
  private readonly background = new Set<Promise<void>>();
  private readonly slots = new Semaphore(BACKGROUND_LIMIT);

  /**
   * `seed` runs inside the preparation when it made the runtime's data, so a start that joins the
   * preparation also waits for it; its failure is logged and never fails the preparation.
   */
  constructor(
    private readonly provisioner: RuntimeProvisioner,
    private readonly logger: Logger,
    private readonly seed: (owner: RuntimeOwner, placement: RuntimePlacement) => Promise<void> = async () => {},
  ) {}

  /**
   * The runtime's placement, prepared now or by the preparation in flight. A joined preparation
   * that failed is tried once more by this caller: a background failure is retried lazily here.
   */
  async prepare(owner: RuntimeOwner): Promise<RuntimePlacement> {
    const pending = this.inFlight.get(owner.runtimeId);
    if (pending) {
      try {
        return await pending.done;
      } catch {
        // Its failure was logged by whoever began it; this caller makes its own attempt.
      }
    }
    return this.run(owner);
  }

  /** Prepares in the background, behind the limit; never rejects, failures are logged. */
  inBackground(owner: RuntimeOwner, job: BackgroundPreparation): void {
    const work = (async () => {
      const release = await this.slots.acquire();
      try {
        // Checked and begun in one synchronous step: a deletion either sees the preparation in
        // flight (and waits for it) or this check sees the deletion.
        if (!job.stillWanted()) return;
        job.onPrepared(await this.run(owner));
      } catch (err) {
        this.logger.warn(
          { runtimeId: owner.runtimeId, userId: owner.userId, username: owner.username, err: err instanceof Error ? err.message : String(err) },
          'preparing the runtime resources of a user in the background failed; their first start tries again',
        );
      } finally {
        release();
      }
    })();
    this.background.add(work);
    void work.finally(() => this.background.delete(work));
  }

  /** Waits for the preparation in flight on this runtime, if any (it may fail: that is not the caller's concern). */
  async settled(runtimeId: string): Promise<void> {
    await this.inFlight.get(runtimeId)?.done.catch(() => undefined);
  }

  /** Waits for every preparation in flight for this user. */
  async settledForUser(userId: string): Promise<void> {
    await Promise.all([...this.inFlight.values()].filter((p) => p.userId === userId).map((p) => p.done.catch(() => undefined)));
  }

  /** Waits for every background preparation, queued ones included (shutdown, tests). */
  async drain(): Promise<void> {
    await Promise.all([...this.background]);
  }

  private run(owner: RuntimeOwner): Promise<RuntimePlacement> {
    const existing = this.inFlight.get(owner.runtimeId);
    if (existing) return existing.done;
    const done = this.provisioner
      .prepare(owner)
      .then(async (placement) => {
        if (placement.freshData) {
          await this.seed(owner, placement).catch((err: unknown) => {
            this.logger.warn({ runtimeId: owner.runtimeId, username: owner.username, err: err instanceof Error ? err.message : String(err) }, 'seeding a new runtime volume with its configuration failed; the first start writes it');
          });
        }
        return placement;
      })
      .finally(() => {
        if (this.inFlight.get(owner.runtimeId)?.done === done) this.inFlight.delete(owner.runtimeId);
      });
    this.inFlight.set(owner.runtimeId, { userId: owner.userId, done });
    return done;
  }
}
