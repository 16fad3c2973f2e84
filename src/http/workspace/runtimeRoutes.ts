import type { ExternalChanges } from '../../lib/externalChanges';
import type { RuntimeTarget } from './runtimeRelay';

/** A running, ready runtime's address, parsed once. */
export interface RuntimeRoute {
  runtimeId: string;
  target: RuntimeTarget;
}

/** What the route cache reads and listens to; RuntimeManager and RuntimeEventHub provide it. */
export interface RouteSource {
  routeForUser(userId: string): { runtimeId: string | null; url: string | null };
  /** Every operation (start, stop, restart, re-create, remove) as it is launched. */
  subscribeLaunched(listener: (operation: { userId: string; runtimeId: string }) => void): () => void;
  /** Anything that happens to one runtime: progress of an operation, a state change the engine reported. */
  subscribe(runtimeId: string, listener: () => void): () => void;
}

interface Entry {
  route: RuntimeRoute;
  unsubscribe: () => void;
}

/**
 * Where each user's workspace traffic goes, kept between requests: the manager's answer costs a
 * database row per request. Only routes to a running runtime are kept, and one is dropped on the
 * first sign of change: any operation launched for the user, any event of that runtime (a state
 * the engine reported, an operation's progress), a change made by another process, or an explicit
 * `forget` (workspace sessions revoked). A route that is not kept is asked for every time.
 */
export class RuntimeRouteCache {
  private readonly byUser = new Map<string, Entry>();

  constructor(
    private readonly source: RouteSource,
    private readonly changes: ExternalChanges,
  ) {
    source.subscribeLaunched((operation) => this.forget(operation.userId));
    changes.onChange(() => this.clear());
  }

  /** The route to the user's runtime while it runs and is ready, else null (the manager says why). */
  routeFor(userId: string): RuntimeRoute | null {
    this.changes.check();
    const cached = this.byUser.get(userId);
    if (cached) return cached.route;
    const found = this.source.routeForUser(userId);
    if (!found.runtimeId || !found.url) return null;
    const url = new URL(found.url);
    const route: RuntimeRoute = { runtimeId: found.runtimeId, target: { host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port) || 80 } };
    const unsubscribe = this.source.subscribe(route.runtimeId, () => this.forget(userId));
    this.byUser.set(userId, { route, unsubscribe });
    return route;
  }

  forget(userId: string): void {
    const entry = this.byUser.get(userId);
    if (!entry) return;
    this.byUser.delete(userId);
    entry.unsubscribe();
  }

  clear(): void {
    for (const userId of [...this.byUser.keys()]) this.forget(userId);
  }

  get size(): number {
    return this.byUser.size;
  }
}
