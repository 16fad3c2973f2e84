/**
 * What the control plane and the file agent say to each other: one request as JSON on the
 * agent's stdin, one response as JSON on its stdout. The control plane imports these types only
 * (nothing of the agent's code runs in the control plane's process).
 */

/** Where whole-volume restores unpack and swap (volumeSwap.ts), at the volume's root; never part of a backup. */
export const RESTORE_DIR = '.clawloops-restore';

export type EntryType = 'file' | 'dir' | 'symlink' | 'other';

export interface AgentEntry {
  name: string;
  type: EntryType;
  size: number;
  mtimeMs: number;
  mode: number;
  /** Symlinks only: what the link says, and what it leads to (null when broken or outside the root). */
  target?: string;
  targetType?: EntryType | null;
}

export interface AgentConflict {
  path: string;
  reason: 'exists' | 'is-directory' | 'blocked-by-file';
}

export interface StagedFile {
  /** Name of the staged file inside the staging directory. */
  name: string;
  /** Destination, relative to `dir`. */
  path: string;
}

export interface RootRequest {
  /** Absolute path of the file root inside the container; the API's paths are relative to it. */
  root: string;
}

export type AgentRequest =
  | (RootRequest & { op: 'list'; path: string })
  | (RootRequest & { op: 'stat'; path: string })
  | (RootRequest & { op: 'mkdir'; path: string; parents: boolean })
  | (RootRequest & { op: 'move'; from: string; to: string; overwrite: boolean })
  | (RootRequest & { op: 'remove'; path: string; recursive: boolean })
  | (RootRequest & { op: 'usage' })
  | (RootRequest & { op: 'conflicts'; dir: string; paths: string[]; overwrite: boolean })
  | (RootRequest & { op: 'commit'; staging: string; dir: string; files: StagedFile[]; overwrite: boolean })
  | (RootRequest & { op: 'commitTree'; staging: string; dir: string; overwrite: boolean })
  /**
   * Copies an entry (a folder with everything in it unless `shallow`) inside the root: built under
   * `staging` first and moved into place, so no half-copied tree appears; refused with
   * QUOTA_EXCEEDED when its files hold more than `maxBytes`.
   */
  | (RootRequest & { op: 'copy'; from: string; to: string; overwrite: boolean; shallow: boolean; staging: string; maxBytes: number })
  | (RootRequest & { op: 'replaceText'; staging: string; name: string; path: string; ifMatch: string | null; ifNoneMatch: boolean })
  | { op: 'discard'; staging: string }
  /** Whole-volume restores (volumeSwap.ts): outside any file root, on the volume's own root. */
  | { op: 'swapVolume'; volumeRoot: string; id: string }
  | { op: 'clearRestores'; volumeRoot: string };

export interface AgentFailure {
  ok: false;
  code: string;
  message: string;
  conflicts?: AgentConflict[];
  etag?: string;
}
export type AgentResponse = { ok: true; result: unknown } | AgentFailure;
