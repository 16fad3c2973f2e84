import type { Readable } from 'node:stream';
import { extract, type Header } from 'tar-stream';
import type { FileEntry, RuntimeProvisioner } from './provisioner';
import { decideConfig, MAX_CONFIG_BYTES, type ConfigDecision, type PlatformConfig } from './memberConfig';
import { OPENCLAW_HOME, RUNTIME_UID } from './runtimeSettings';

/** Where the files are put: the volume is mounted at OPENCLAW_HOME, one level below. */
export const FILES_DIR = '/home/node';
export const CONFIG_ENTRY = '.openclaw/openclaw.json';
/**
 * OpenClaw's own backup. At start-up OpenClaw restores it over openclaw.json when the file looks
 * clobbered next to the last good one (no `meta`, half the size, no gateway mode): measured on
 * 2026.9.6, an agent that planted a backup and deleted `meta` got its backup loaded. It gets the
 * same content as the config, so a restore can only bring back what the platform wrote.
 */
export const BACKUP_ENTRY = `${CONFIG_ENTRY}.bak`;
const CONFIG_PATH = `${OPENCLAW_HOME}/openclaw.json`;
/** A folder in the config's place is copied aside only up to this many entries (and MAX_CONFIG_BYTES). */
const MAX_ASIDE_ENTRIES = 256;
const READ_TIMEOUT_MS = 30_000;

/** What is at the config's path in the volume, read without following links and within bounds. */
export type ExistingConfig =
  | { kind: 'absent' }
  | { kind: 'file'; text: string }
  | { kind: 'too-large'; size: number }
  /** Its contents renamed for keeping aside; null when it is too big to copy. */
  | { kind: 'folder'; copy: FileEntry[] | null }
  /** A symbolic link (never followed) or a special file. */
  | { kind: 'other'; what: string };

export interface ConfigWriteResult {
  /** `platform`: there was no file; `merged`: the member's file with platform keys re-applied; `set-aside`: unusable, replaced. */
  outcome: 'platform' | 'merged' | 'set-aside';
  /** Member keys removed or reset to the platform's value (paths only). */
  reset: string[];
  /** Name the unusable entry was kept under, in the OpenClaw home; null if it could not be kept. */
  setAsideAs: string | null;
  reason: string | null;
}

export class ConfigReadError extends Error {}

/** One entry of tar-stream's extractor: its header, and its bytes to iterate. */
type TarEntry = AsyncIterable<unknown> & { header: Header; resume(): unknown };

async function readAll(entry: AsyncIterable<unknown>, limit: number): Promise<Buffer | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const part of entry) {
    const chunk = Buffer.from(part as Uint8Array);
    size += chunk.length;
    if (size > limit) return null;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** The entries of a folder in the config's place, renamed under `asideName`, if it is small enough. */
async function folderCopy(first: Header, rest: AsyncIterator<TarEntry>, asideName: string): Promise<FileEntry[] | null> {
  const root = first.name.replace(/\/$/, '');
  const entries: FileEntry[] = [{ path: asideName, type: 'directory', mode: 0o700, uid: RUNTIME_UID, gid: RUNTIME_UID }];
  let bytes = 0;
  for (;;) {
    const next = await rest.next();
    if (next.done) return entries;
    const entry = next.value;
    const { header } = entry;
    const relative = header.name.replace(/\/$/, '').slice(root.length);
    if (entries.length >= MAX_ASIDE_ENTRIES || !relative.startsWith('/')) return null;
    const path = `${asideName}${relative}`;
    if (header.type === 'directory') {
      entries.push({ path, type: 'directory', mode: 0o700, uid: RUNTIME_UID, gid: RUNTIME_UID });
      entry.resume();
    } else if (header.type === 'file' || header.type === 'contiguous-file') {
      const content = await readAll(entry, MAX_CONFIG_BYTES - bytes);
      if (!content) return null;
      bytes += content.length;
      entries.push({ path, type: 'file', content, mode: 0o600, uid: RUNTIME_UID, gid: RUNTIME_UID });
    } else {
      // Links inside are not recreated: a link can point anywhere, and the engine refuses some.
      entry.resume();
    }
  }
}

/**
 * Reads what is at the config's path as an archive (the entry itself: a symbolic link
 * comes back as a link and is never followed), reading at most MAX_CONFIG_BYTES of it.
 */
/** What the config file needs of a provisioner: reading and writing the runtime's data. */
export type RuntimeData = Pick<RuntimeProvisioner, 'readEntry' | 'writeFiles'>;

export async function readExistingConfig(data: RuntimeData, instanceId: string, asideName: string): Promise<ExistingConfig> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), READ_TIMEOUT_MS);
  let archive: Readable | null = null;
  try {
    archive = await data.readEntry(instanceId, CONFIG_PATH, abort.signal);
    if (!archive) return { kind: 'absent' };
    const source = archive;
    abort.signal.addEventListener('abort', () => source.destroy(new Error(`no answer within ${READ_TIMEOUT_MS / 1000} s`)), { once: true });
    const parser = extract();
    source.on('error', (err) => parser.destroy(err));
    source.pipe(parser);
    const entries: AsyncIterator<TarEntry> = parser[Symbol.asyncIterator]();
    try {
      const first = await entries.next();
      if (first.done) return { kind: 'absent' };
      const { header } = first.value;
      if (header.type === 'file' || header.type === 'contiguous-file') {
        const size = header.size ?? 0;
        if (size > MAX_CONFIG_BYTES) return { kind: 'too-large', size };
        const content = await readAll(first.value, MAX_CONFIG_BYTES);
        return content ? { kind: 'file', text: content.toString('utf8') } : { kind: 'too-large', size };
      }
      first.value.resume();
      if (header.type === 'directory') return { kind: 'folder', copy: await folderCopy(header, entries, asideName) };
      return { kind: 'other', what: header.type === 'symlink' ? 'a symbolic link' : `a special file (${header.type ?? 'unknown'})` };
    } finally {
      parser.destroy();
    }
  } catch (err) {
    throw new ConfigReadError(err instanceof Error ? err.message : String(err));
  } finally {
    clearTimeout(timer);
    archive?.destroy();
  }
}

/** `openclaw.json.broken-2026-12-06T02-15-31Z`: sorts by time, says what it is, valid on every file system. */
export const asideNameAt = (now: number) => `openclaw.json.broken-${new Date(now).toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-')}`;

/**
 * Writes the config a runtime starts with into its volume, in one archive: the member's file
 * with the platform-owned keys re-applied, or, when what is there cannot be used (a link, a
 * folder, too large, not JSON5), the platform's config, with the unusable entry kept aside
 * under a `.broken-<time>` name; OpenClaw's backup gets the same content. `files` are the
 * rendered files (the home folder and the platform's config).
 */
export async function writeRuntimeConfig(
  data: RuntimeData,
  instanceId: string,
  rendered: { files: FileEntry[]; openclawConfig: PlatformConfig },
  offeredModels: readonly string[],
  now: number,
): Promise<ConfigWriteResult> {
  const asideName = asideNameAt(now);
  const asidePath = `.openclaw/${asideName}`;
  const existing = await readExistingConfig(data, instanceId, asidePath);
  const platform = rendered.openclawConfig;
  const decision: ConfigDecision =
    existing.kind === 'absent' || existing.kind === 'file'
      ? decideConfig(platform, existing.kind === 'file' ? existing.text : null, offeredModels)
      : {
          kind: 'unusable',
          config: platform,
          reason:
            existing.kind === 'too-large'
              ? `it is larger than ${MAX_CONFIG_BYTES} bytes (${existing.size})`
              : `it is ${existing.kind === 'folder' ? 'a folder' : existing.what}, not a file`,
        };

  // A hard link keeps a file, or a link unfollowed, under a second name without copying it; the
  // config entry after it then replaces only the original name. A folder cannot be hard-linked:
  // its (bounded) contents are copied instead.
  let aside: FileEntry[] = [];
  if (decision.kind === 'unusable') {
    if (existing.kind === 'folder') aside = existing.copy ?? [];
    else aside = [{ path: asidePath, type: 'hardlink', linkTarget: CONFIG_ENTRY, mode: 0o600, uid: RUNTIME_UID, gid: RUNTIME_UID }];
  }
  const content = Buffer.from(`${JSON.stringify(decision.config, null, 2)}\n`);
  const entries = rendered.files.flatMap((file) =>
    file.path === CONFIG_ENTRY ? [...aside, { ...file, path: BACKUP_ENTRY, content }, { ...file, content }] : [file],
  );
  await data.writeFiles(instanceId, FILES_DIR, entries);

  if (decision.kind === 'unusable') return { outcome: 'set-aside', reset: [], setAsideAs: aside.length > 0 ? asideName : null, reason: decision.reason };
  return { outcome: existing.kind === 'absent' ? 'platform' : 'merged', reset: decision.reset, setAsideAs: null, reason: null };
}
