import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pack } from 'tar-stream';
import type { FileEntry } from './provisioner';

/** The tar archive of a few small entries (configuration files, folders, hard links), in order. */
export async function fileEntriesTar(entries: FileEntry[]): Promise<Buffer> {
  const archive = pack();
  for (const entry of entries) {
    const header = { name: entry.path, mode: entry.mode, uid: entry.uid, gid: entry.gid, mtime: new Date() };
    if (entry.type === 'directory') archive.entry({ ...header, type: 'directory' });
    else if (entry.type === 'hardlink') archive.entry({ ...header, type: 'link', linkname: entry.linkTarget ?? '' });
    else archive.entry({ ...header, type: 'file', size: entry.content?.length ?? 0 }, entry.content ?? Buffer.alloc(0));
  }
  archive.finalize();
  const chunks: Buffer[] = [];
  await pipeline(archive, new PassThrough().on('data', (c: Buffer) => chunks.push(c)));
  return Buffer.concat(chunks);
}
