/**
 * What a connection was opened under. `sessionId` is a PLATFORM session (a workspace session
 * derives from one, and ends with it) or, for streams a script opened, its API token's
 * `token:<id>` (domain/apiTokens.ts).
 */
export interface ConnectionOwner {
  userId: string;
  sessionId: string;
  /**
   * `proxied`: a workspace WebSocket or a request proxied to a runtime (it also ends when the
   * runtime stops or the owner's workspace sessions are revoked). `stream`: an event or log stream.
   */
  kind: 'proxied' | 'stream';
}

interface Entry {
  owner: ConnectionOwner;
  close: () => void;
}

/**
 * Every long-lived connection the control plane holds for someone, by the platform session it was
 * opened under and by user, so that ending a session (sign-out, revocation, password or role
 * change, a disabled account) closes at once everything it opened: without this, an open
 * OpenClaw WebSocket (full control of the agent) outlived the sign-out.
 */
export class LiveConnections {
  private readonly bySession = new Map<string, Set<Entry>>();
  private readonly byUser = new Map<string, Set<Entry>>();

  /** Registers a connection; the returned function forgets it (call it when the connection closes). */
  add(owner: ConnectionOwner, close: () => void): () => void {
    const entry: Entry = { owner, close };
    index(this.bySession, owner.sessionId, entry);
    index(this.byUser, owner.userId, entry);
    return () => this.forget(entry);
  }

  /** Closes everything opened under these platform sessions; returns how many. */
  endSessions(sessionIds: readonly string[]): number {
    let closed = 0;
    for (const id of sessionIds) {
      for (const entry of [...(this.bySession.get(id) ?? [])]) closed += this.end(entry);
    }
    return closed;
  }

  /** Closes a user's workspace WebSockets and proxied requests (their runtime stopped, their workspace sessions were revoked). */
  endProxiedOf(userId: string): number {
    let closed = 0;
    for (const entry of [...(this.byUser.get(userId) ?? [])]) if (entry.owner.kind === 'proxied') closed += this.end(entry);
    return closed;
  }

  /** Closes every connection of one kind (shutdown). */
  endAll(kind: ConnectionOwner['kind']): number {
    let closed = 0;
    for (const set of [...this.byUser.values()]) for (const entry of [...set]) if (entry.owner.kind === kind) closed += this.end(entry);
    return closed;
  }

  /** The platform sessions that have something open right now. */
  sessionIds(): string[] {
    return [...this.bySession.keys()];
  }

  count(userId: string, kind: ConnectionOwner['kind']): number {
    let n = 0;
    for (const entry of this.byUser.get(userId) ?? []) if (entry.owner.kind === kind) n++;
    return n;
  }

  private end(entry: Entry): number {
    this.forget(entry);
    entry.close();
    return 1;
  }

  private forget(entry: Entry): void {
    unindex(this.bySession, entry.owner.sessionId, entry);
    unindex(this.byUser, entry.owner.userId, entry);
  }
}

function index(map: Map<string, Set<Entry>>, key: string, entry: Entry): void {
  const set = map.get(key);
  if (set) set.add(entry);
  else map.set(key, new Set([entry]));
}

function unindex(map: Map<string, Set<Entry>>, key: string, entry: Entry): void {
  const set = map.get(key);
  if (!set) return;
  set.delete(entry);
  if (set.size === 0) map.delete(key);
}
