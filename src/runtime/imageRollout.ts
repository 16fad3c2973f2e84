import type { RuntimeRepository } from '../db/repositories/runtimeRepository';
import type { SettingsRepository } from '../db/repositories/settingsRepository';
import type { Actor, AuditLog, RequestOrigin } from '../domain/audit';
import type { Clock } from '../lib/clock';
import { AppError, conflict } from '../lib/errors';
import type { Logger } from '../lib/logger';
import { newId } from '../lib/secrets';
import type { OperationView, RuntimeEventHub } from './operations';
import type { PullProgress } from './provisioner';
import type { StartedOperation } from './runtimeLifecycle';
import type { RuntimeView } from './runtimeViews';

export type RolloutItemStatus = 'pending' | 'restarting' | 'updated' | 'rolling-back' | 'rolled-back' | 'failed' | 'skipped';

export interface RolloutItem {
  userId: string;
  username: string;
  canary: boolean;
  /** The image it ran before: where it goes back to when the new one fails. */
  previousImage: string;
  status: RolloutItemStatus;
  /** Why it did not end on the new image (the start's own words). */
  error: { code: string; message: string } | null;
  /** The last lines OpenClaw wrote on the new image, when it failed there. */
  logTail: string | null;
}

export type RolloutStatus = 'running' | 'succeeded' | 'partial' | 'halted' | 'failed';

export interface RolloutState {
  id: string;
  image: string;
  actor: string;
  status: RolloutStatus;
  step: 'image' | 'backup' | 'runtimes' | 'done';
  /** While the image is fetched. */
  pull: { bytesDone: number; bytesTotal: number } | null;
  /** The backup taken before any runtime was restarted; null when none was (see `notes`). */
  backupId: string | null;
  items: RolloutItem[];
  /** What the administrator should know: no backup key, the configured image unchanged, ... */
  notes: string[];
  error: { code: string; message: string } | null;
  startedAt: string;
  finishedAt: string | null;
}

/** What a rollout needs of the runtime layer. */
export interface RolloutRuntimes {
  listViews(): RuntimeView[];
  viewForUser(userId: string): RuntimeView;
  restart(actor: Actor, userId: string, origin: RequestOrigin): StartedOperation;
  settled(runtimeId: string): Promise<void>;
  logTailFor(instanceId: string): Promise<string>;
  ensureImage(image: string, onProgress: (progress: PullProgress) => void): Promise<void>;
  readonly settings: { image: string };
}

export interface ImageRolloutDeps {
  runtimes: RolloutRuntimes;
  records: RuntimeRepository;
  hub: Pick<RuntimeEventHub, 'latestOperation'>;
  /** Makes `image` the configured one (the admin settings, audited). */
  configureImage(actor: Actor, image: string, origin: RequestOrigin): void;
  /** A backup before any runtime restarts: its id, null without a backup key; rejects when it fails. */
  backUp(): Promise<string | null>;
  /** Where the last rollout is kept, so the console still shows it after a restart. */
  store: SettingsRepository;
  audit: AuditLog;
  clock: Clock;
  logger: Logger;
}

const STORE_KEY = 'runtime.lastRollout';

/**
 * Moves running runtimes onto a new image one at a time, each gated on its health: a runtime
 * restarted onto the new image must become ready within the ready timeout, or it is put back on
 * the image it ran before (its data untouched: a restart only replaces the container) and held
 * there (runtimes.pinned_image) with the reason and OpenClaw's last log lines for the
 * administrator. The first one (the canary, when one is chosen) decides for the rest: if it
 * fails, nothing else is touched and the configured image stays as it was; once it succeeds the
 * new image becomes the configured one, so stopped runtimes start on it. Before anything
 * restarts, a backup is taken (when a backup key is configured).
 */
export class ImageRollout {
  private state: RolloutState | null;

  constructor(private readonly deps: ImageRolloutDeps) {
    const stored = deps.store.get(STORE_KEY) as RolloutState | undefined;
    // A rollout the server stopped in the middle of is over: it says so.
    this.state = stored && stored.status === 'running' ? { ...stored, status: 'failed', error: { code: 'INTERRUPTED', message: 'The server stopped during the rollout; runtimes not yet moved stayed on their image.' } } : (stored ?? null);
  }

  get current(): RolloutState | null {
    return this.state;
  }

  start(actor: Actor, origin: RequestOrigin, input: { image: string; canaryUserId?: string | undefined }): RolloutState {
    if (this.state?.status === 'running') throw conflict('ROLLOUT_RUNNING', 'An image rollout is in progress; wait for it to finish.');
    const running = this.deps.runtimes.listViews().filter((v) => v.state === 'running' && v.image !== null && v.image !== input.image);
    let canary: RuntimeView | null = null;
    if (input.canaryUserId !== undefined) {
      canary = running.find((v) => v.userId === input.canaryUserId) ?? null;
      if (!canary) {
        const view = this.deps.runtimes.viewForUser(input.canaryUserId);
        if (view.image === input.image && view.state === 'running') throw conflict('CANARY_ALREADY_UPDATED', `${view.username}'s runtime runs ${input.image} already.`);
        throw conflict('CANARY_NOT_RUNNING', `${view.username}'s runtime is not running: a canary must be a running runtime, restarted first and watched.`);
      }
    }
    const ordered = canary ? [canary, ...running.filter((v) => v !== canary)] : running;
    const now = this.deps.clock.now();
    this.state = {
      id: newId(),
      image: input.image,
      actor: actor.username,
      status: 'running',
      step: 'image',
      pull: null,
      backupId: null,
      items: ordered.map((v) => ({ userId: v.userId, username: v.username, canary: v === canary, previousImage: v.image ?? '', status: 'pending', error: null, logTail: null })),
      notes: [],
      error: null,
      startedAt: new Date(now).toISOString(),
      finishedAt: null,
    };
    this.save();
    this.deps.audit.record({ action: 'runtime.rollout.start', actor, origin, detail: { image: input.image, runtimes: ordered.length, canary: canary?.username ?? null } });
    const state = this.state;
    void this.run(state, actor, origin).catch((err: unknown) => {
      this.finish(state, 'failed', { code: 'ROLLOUT_FAILED', message: (err as Error).message });
    });
    return state;
  }

  private async run(state: RolloutState, actor: Actor, origin: RequestOrigin): Promise<void> {
    const { runtimes, records, clock } = this.deps;
    try {
      await runtimes.ensureImage(state.image, (p) => {
        state.pull = { bytesDone: p.bytesDone, bytesTotal: p.bytesTotal };
      });
    } catch (err) {
      return this.finish(state, 'failed', { code: 'IMAGE_UNAVAILABLE', message: `${state.image} is not on this host and could not be fetched: ${(err as Error).message}. Nothing was changed.` });
    }
    state.pull = null;
    state.step = 'backup';
    this.save();
    try {
      state.backupId = await this.deps.backUp();
      if (state.backupId === null) state.notes.push('No backup key is configured (CLAWLOOPS_BACKUP_KEY_FILE): no backup was taken before the upgrade.');
    } catch (err) {
      return this.finish(state, 'failed', { code: 'BACKUP_FAILED', message: `The backup before the upgrade failed, so no runtime was restarted: ${(err as Error).message}` });
    }
    state.step = 'runtimes';
    this.save();

    let proven = state.items.length === 0;
    if (proven) {
      state.notes.push('No running runtime runs another image: the new image applies to each runtime at its next start.');
      this.configure(state, actor, origin);
    }
    // The first runtime actually restarted decides for the rest.
    let tried = 0;
    for (const item of state.items) {
      if (!proven && tried > 0) break;
      const runtime = records.findByUserId(item.userId);
      if (!runtime) {
        item.status = 'skipped';
        item.error = { code: 'RUNTIME_NOT_FOUND', message: 'The runtime was deleted meanwhile.' };
        continue;
      }
      // Stopped since the rollout began (by its member, say): not started behind their back.
      if (runtimes.viewForUser(item.userId).state !== 'running') {
        item.status = 'skipped';
        item.error = { code: 'RUNTIME_NOT_RUNNING', message: 'It was stopped before its turn; it starts on the configured image next time.' };
        this.save();
        continue;
      }
      item.status = 'restarting';
      tried++;
      this.save();
      records.setPinnedImage(runtime.id, state.image, clock.now());
      const moved = await this.restartOnto(item, runtime.id, actor, origin);
      if (moved.ok) {
        item.status = 'updated';
        if (!proven) {
          proven = true;
          this.configure(state, actor, origin);
        }
        this.save();
        continue;
      }
      item.error = moved.error;
      item.logTail = moved.logTail;
      item.status = 'rolling-back';
      this.save();
      records.setPinnedImage(runtime.id, item.previousImage, clock.now());
      const back = await this.restartOnto(item, runtime.id, actor, origin);
      item.status = back.ok ? 'rolled-back' : 'failed';
      if (!back.ok) item.error = { code: back.error.code, message: `${moved.error.message} Putting it back on ${item.previousImage} failed too: ${back.error.message}` };
      this.deps.logger.warn({ username: item.username, image: state.image, code: moved.error.code, rolledBack: back.ok }, 'a runtime failed on the new image and was put back');
      this.deps.audit.record({
        action: 'runtime.rollout.rollback',
        actor,
        origin,
        target: { type: 'runtime', id: runtime.id, label: item.username },
        detail: { image: state.image, previousImage: item.previousImage, code: moved.error.code, rolledBack: back.ok },
      });
      this.save();
    }
    for (const item of state.items) {
      if (item.status === 'pending') {
        item.status = 'skipped';
        item.error = { code: 'FIRST_FAILED', message: `Not restarted: ${state.items.find((i) => i.status === 'rolled-back' || i.status === 'failed')?.username ?? 'the first runtime'} failed on ${state.image}.` };
      }
    }
    if (!proven) {
      state.notes.push(`The configured image stays ${runtimes.settings.image}.`);
      return this.finish(state, 'halted', null);
    }
    // Those moved after the image became the configured one need no pin of their own.
    records.clearPinsTo(state.image, clock.now());
    const failures = state.items.some((i) => i.status === 'rolled-back' || i.status === 'failed' || i.status === 'skipped');
    this.finish(state, failures ? 'partial' : 'succeeded', null);
  }

  /** Restarts the runtime on whatever it is pinned to now and waits for the verdict. */
  private async restartOnto(item: RolloutItem, runtimeId: string, actor: Actor, origin: RequestOrigin): Promise<{ ok: true } | { ok: false; error: { code: string; message: string }; logTail: string | null }> {
    let started: StartedOperation;
    try {
      started = this.deps.runtimes.restart(actor, item.userId, origin);
    } catch (err) {
      const code = err instanceof AppError ? err.code : 'RESTART_REFUSED';
      return { ok: false, error: { code, message: (err as Error).message }, logTail: null };
    }
    await this.deps.runtimes.settled(runtimeId);
    const op: OperationView | null = this.deps.hub.latestOperation(runtimeId)?.snapshot ?? started.operation;
    if (op?.status === 'succeeded' && this.deps.runtimes.viewForUser(item.userId).state === 'running') return { ok: true };
    const error = op?.error ?? { code: 'NOT_RUNNING', message: 'The runtime did not come up.' };
    const containerId = this.deps.records.findById(runtimeId)?.containerId ?? null;
    const logTail = containerId ? await this.deps.runtimes.logTailFor(containerId).catch(() => null) : null;
    return { ok: false, error, logTail: logTail || null };
  }

  private configure(state: RolloutState, actor: Actor, origin: RequestOrigin): void {
    if (this.deps.runtimes.settings.image !== state.image) this.deps.configureImage(actor, state.image, origin);
    this.deps.records.clearPinsTo(state.image, this.deps.clock.now());
  }

  private finish(state: RolloutState, status: RolloutStatus, error: { code: string; message: string } | null): void {
    state.status = status;
    state.step = 'done';
    state.error = error;
    state.finishedAt = new Date(this.deps.clock.now()).toISOString();
    this.save();
    this.deps.logger.info({ image: state.image, status, moved: state.items.filter((i) => i.status === 'updated').length, of: state.items.length }, 'image rollout finished');
  }

  private save(): void {
    if (this.state) this.deps.store.set(STORE_KEY, this.state, this.deps.clock.now());
  }
}
