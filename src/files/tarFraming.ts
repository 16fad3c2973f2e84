import { Transform, type Readable, type TransformCallback } from 'node:stream';

/**
 * Reads the one regular file at the start of a tar stream (what a volume's archive read returns
 * for a file) and passes its bytes through as they arrive, without a general tar parser's
 * per-chunk bookkeeping: a download is the hottest path of the file manager. Understands the
 * headers Go's archive/tar writes in front of a file: PAX records (long or non-ASCII names,
 * sizes over 8 GiB) and GNU long names.
 */
export interface TarFileHead {
  type: 'file' | 'other';
  size: number;
  mtime: Date;
}

const BLOCK = 512;

function octal(header: Buffer, offset: number, length: number): number {
  // Base-256 (high bit set) for values that do not fit in octal digits.
  if ((header[offset] ?? 0) & 0x80) {
    let value = (header[offset] ?? 0) & 0x7f;
    for (let i = 1; i < length; i++) value = value * 256 + (header[offset + i] ?? 0);
    return value;
  }
  const text = header.toString('ascii', offset, offset + length).replace(/\0.*$/s, '').trim();
  return text === '' ? 0 : parseInt(text, 8);
}

function paxRecords(data: Buffer): Record<string, string> {
  const records: Record<string, string> = {};
  let offset = 0;
  while (offset < data.length) {
    const space = data.indexOf(0x20, offset);
    if (space < 0) break;
    const length = parseInt(data.toString('ascii', offset, space), 10);
    if (!Number.isFinite(length) || length <= 0) break;
    const record = data.toString('utf8', space + 1, offset + length - 1);
    const eq = record.indexOf('=');
    if (eq > 0) records[record.slice(0, eq)] = record.slice(eq + 1);
    offset += length;
  }
  return records;
}

/** Resolves with the first entry's head once it is known; `body` then carries exactly its bytes. */
export function firstTarFile(archive: Readable): Promise<{ head: TarFileHead; body: Readable }> {
  return new Promise((resolve, reject) => {
    let pending: Buffer = Buffer.alloc(0);
    let pax: Record<string, string> = {};
    let remaining = -1; // bytes of the file still to pass; -1 while headers are read
    let settled = false;

    const body = new Transform({
      transform(chunk: Buffer, _enc, done: TransformCallback) {
        if (remaining >= 0) {
          passThrough(this, chunk);
          return done();
        }
        pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
        try {
          readHeaders(this);
        } catch (err) {
          return done(err as Error);
        }
        done();
      },
      flush(done) {
        if (!settled) fail(new Error('the archive ended before its first file'));
        else if (remaining > 0) return done(new Error(`the archive ended ${remaining} bytes before the end of the file`));
        done();
      },
    });

    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      reject(err);
    };

    const passThrough = (stream: Transform, chunk: Buffer) => {
      if (remaining === 0) return;
      const part = chunk.length > remaining ? chunk.subarray(0, remaining) : chunk;
      remaining -= part.length;
      stream.push(part);
      if (remaining === 0) {
        stream.push(null);
        archive.unpipe(stream);
        archive.destroy();
      }
    };

    const readHeaders = (stream: Transform) => {
      while (remaining < 0) {
        if (pending.length < BLOCK) return;
        const header = pending.subarray(0, BLOCK);
        if (header.every((b) => b === 0)) throw new Error('the archive holds no file');
        const typeflag = String.fromCharCode(header[156] ?? 0);
        const size = octal(header, 124, 12);
        const padded = Math.ceil(size / BLOCK) * BLOCK;
        if (typeflag === 'x' || typeflag === 'g' || typeflag === 'L') {
          // The extension's data (padded to blocks) comes next; its records apply to the next header.
          if (pending.length < BLOCK + padded) return;
          const data = pending.subarray(BLOCK, BLOCK + size);
          if (typeflag === 'x') pax = { ...pax, ...paxRecords(data) };
          pending = pending.subarray(BLOCK + padded);
          continue;
        }
        const fileSize = pax.size !== undefined ? Number(pax.size) : size;
        const mtime = new Date((pax.mtime !== undefined ? Number(pax.mtime) : octal(header, 136, 12)) * 1000);
        const type = typeflag === '0' || typeflag === '\0' || typeflag === '7' ? 'file' : 'other';
        pending = pending.subarray(BLOCK);
        remaining = type === 'file' ? fileSize : 0;
        settled = true;
        resolve({ head: { type, size: fileSize, mtime }, body: stream });
        const rest = pending;
        pending = Buffer.alloc(0);
        if (remaining === 0) {
          stream.push(null);
          archive.unpipe(stream);
          archive.destroy();
        } else if (rest.length > 0) passThrough(stream, rest);
      }
    };

    archive.on('error', (err) => {
      fail(err);
      body.destroy(err);
    });
    body.on('error', fail);
    body.on('close', () => archive.destroy());
    archive.pipe(body);
  });
}

function writeOctal(header: Buffer, value: number, offset: number, length: number): void {
  if (value >= 8 ** (length - 1)) {
    // Base-256: the high bit of the first byte marks it (sizes from 8 GiB up).
    header[offset] = 0x80;
    let rest = value;
    for (let i = length - 1; i > 0; i--) {
      header[offset + i] = rest % 256;
      rest = Math.floor(rest / 256);
    }
    return;
  }
  header.write(`${value.toString(8).padStart(length - 1, '0')}\0`, offset, length, 'ascii');
}

export interface TarEntryHeader {
  name: string;
  type: 'file' | 'directory' | 'symlink';
  size: number;
  mode: number;
  uid: number;
  gid: number;
  mtime: Date;
  linkname?: string;
}

const TYPEFLAG: Record<TarEntryHeader['type'], string> = { file: '0', directory: '5', symlink: '2' };

/** One PAX record, `"<length> <key>=<value>\n"`, where the length counts its own digits too. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let length = Buffer.byteLength(body);
  while (String(length).length + Buffer.byteLength(body) !== length) length = String(length).length + Buffer.byteLength(body);
  return `${length}${body}`;
}

function ustarBlock(name: Buffer, entry: TarEntryHeader, typeflag: string, size: number, linkname: Buffer | null): Buffer {
  const header = Buffer.alloc(BLOCK);
  name.copy(header, 0, 0, Math.min(name.length, 100));
  // Only permission bits: nothing we write is ever set-id or sticky, whatever a caller passes.
  writeOctal(header, entry.mode & 0o777, 100, 8);
  writeOctal(header, entry.uid, 108, 8);
  writeOctal(header, entry.gid, 116, 8);
  writeOctal(header, size, 124, 12);
  writeOctal(header, Math.max(0, Math.floor(entry.mtime.getTime() / 1000)), 136, 12);
  header.write(typeflag, 156, 1, 'ascii');
  if (linkname) linkname.copy(header, 157, 0, Math.min(linkname.length, 100));
  header.write('ustar\u000000', 257, 8, 'ascii');
  header.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += header[i] ?? 0;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return header;
}

/**
 * The header block(s) of one entry: a ustar header, preceded by a PAX extended header when the
 * name or link target does not fit its 100-byte field. Written by hand because a general tar
 * packer costs a CPU core's worth of bookkeeping on a 1 GiB upload, and because the file manager
 * must control every byte it hands the engine (Staging in workspaceFiles.ts).
 */
export function tarHeader(entry: TarEntryHeader): Buffer {
  const name = Buffer.from(entry.type === 'directory' && !entry.name.endsWith('/') ? `${entry.name}/` : entry.name, 'utf8');
  const linkname = entry.type === 'symlink' ? Buffer.from(entry.linkname ?? '', 'utf8') : null;
  if (name.includes(0) || linkname?.includes(0)) throw new Error('tar names cannot contain NUL bytes');
  const size = entry.type === 'file' ? entry.size : 0;
  const main = ustarBlock(name, entry, TYPEFLAG[entry.type], size, linkname);
  if (name.length <= 100 && (linkname === null || linkname.length <= 100)) return main;
  const records = Buffer.from(
    (name.length > 100 ? paxRecord('path', name.toString('utf8')) : '') + (linkname && linkname.length > 100 ? paxRecord('linkpath', linkname.toString('utf8')) : ''),
    'utf8',
  );
  const pax = ustarBlock(Buffer.from('PaxHeader', 'ascii'), entry, 'x', records.length, null);
  return Buffer.concat([pax, records, tarPadding(records.length), main]);
}

/** Zeros that fill a file's last block. */
export const tarPadding = (size: number): Buffer => Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);

/** The end of an archive: two empty blocks. */
export const TAR_END = Buffer.alloc(2 * BLOCK);
