import fs from 'node:fs';
import { AppError } from '../lib/errors';

export interface SpoolLimits {
  /** Folder the spooled files go to (inside the data directory by default). */
  dir: string;
  /** Bytes all spooled uploads together may hold at once. */
  maxBytes: number;
  /** The spool never lets free space on its disk drop below this: the database lives there too. */
  minFreeBytes: number;
}

/** Free bytes for an unprivileged writer on the file system holding `dir`. */
export function freeBytesOf(dir: string): number {
  const stats = fs.statfsSync(dir);
  return Number(stats.bavail) * Number(stats.bsize);
}

// The disk is asked again after this much growth of one claim: often enough to stop well before
// the floor, rarely enough to cost nothing per chunk.
const CHECK_EVERY_BYTES = 16 * 1024 ** 2;

export interface SpoolClaim {
  /** Grows this claim to `totalBytes`; throws (507) when the spool or the disk has no room for it. */
  grow(totalBytes: number): void;
  release(): void;
}

/**
 * The host disk space that uploads without a manifest take while they are spooled. Every claim
 * counts against one shared cap before its bytes are written, and the disk's free space is
 * checked as claims grow, so a flood of spooled uploads cannot fill the disk the database is on.
 */
export class SpoolSpace {
  private held = 0;

  constructor(
    private readonly limits: SpoolLimits,
    private readonly freeBytes: (dir: string) => number = freeBytesOf,
  ) {}

  get heldBytes(): number {
    return this.held;
  }

  claim(): SpoolClaim {
    let mine = 0;
    let checkedAt = -CHECK_EVERY_BYTES;
    return {
      grow: (totalBytes: number) => {
        const extra = totalBytes - mine;
        if (extra <= 0) return;
        if (this.held + extra > this.limits.maxBytes) throw spoolFull(this.limits.maxBytes);
        if (totalBytes - checkedAt >= CHECK_EVERY_BYTES) {
          checkedAt = totalBytes;
          // Room for what this claim may still write before the next check, above the floor.
          if (this.freeBytes(this.limits.dir) - CHECK_EVERY_BYTES < this.limits.minFreeBytes) throw diskLow();
        }
        this.held += extra;
        mine = totalBytes;
      },
      release: () => {
        this.held -= mine;
        mine = 0;
      },
    };
  }
}

const spoolFull = (max: number) =>
  new AppError(
    507,
    'SPOOL_FULL',
    `Uploads without a manifest are held on the server's disk first, and that space (${max} bytes, CLAWLOOPS_FILES_SPOOL_LIMIT) is taken. Try again later, or send a manifest field so files stream straight into the workspace.`,
  );

const diskLow = () =>
  new AppError(507, 'SERVER_DISK_LOW', "The server's disk is almost full, so uploads without a manifest are refused. Send a manifest field so files stream straight into the workspace, or ask an administrator.");
