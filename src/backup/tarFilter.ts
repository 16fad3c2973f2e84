const BLOCK = 512;

/**
 * Leaves entries out of a tar stream and passes every other byte through untouched: headers are
 * read (ustar, pax and GNU long names), file contents are never copied or re-framed. A backup
 * reads a whole volume through it; re-packing the archive entry by entry (tar-stream) cost a
 * second of CPU per GiB.
 *
 * `drop(path)` decides per entry, on its full path (a pax `path` or GNU long name wins over the
 * header's own); the metadata records in front of a dropped entry go with it. A global pax
 * header passes. The input may be a buffer its owner reuses once `feed` returns: what is kept
 * across calls (a header split between two chunks, metadata records) is copied. What passes
 * goes to `emit` as views of the input, valid during the call only.
 */
export class TarEntrySieve {
  private header = Buffer.alloc(BLOCK);
  private headerFill = 0;
  /** Bytes of the current entry's contents (with padding) still to come, and whether they pass. */
  private remaining = 0;
  private passing = true;
  /** A pax or GNU long-name record being collected: its header and contents, whole. */
  private meta: { header: Buffer; body: Buffer[]; left: number; type: string } | null = null;
  /** Records collected for the next entry, and what they say about it. */
  private pendingMeta: Buffer[] = [];
  private metaPath: string | null = null;
  private metaSize: number | null = null;
  private ended = false;
  private emit: (view: Buffer) => void = () => undefined;

  constructor(private readonly dropped: (path: string) => boolean) {}

  feed(chunk: Buffer, emit: (view: Buffer) => void): void {
    this.emit = emit;
    try {
      this.consume(chunk);
    } finally {
      this.emit = () => undefined;
    }
  }

  /** The input's end: throws when it came in the middle of an entry. */
  finish(): void {
    if (!this.ended && (this.headerFill > 0 || this.remaining > 0 || this.meta)) throw new Error('the archive ended in the middle of an entry');
  }

  private consume(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.ended) {
        this.emit(chunk.subarray(offset));
        return;
      }
      if (this.meta) {
        const n = Math.min(this.meta.left, chunk.length - offset);
        this.meta.body.push(Buffer.from(chunk.subarray(offset, offset + n)));
        this.meta.left -= n;
        offset += n;
        if (this.meta.left === 0) this.finishMeta();
        continue;
      }
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, chunk.length - offset);
        if (this.passing) this.emit(chunk.subarray(offset, offset + n));
        this.remaining -= n;
        offset += n;
        continue;
      }
      // A header: whole in this chunk (no copy), or gathered across chunks.
      let header: Buffer;
      if (this.headerFill === 0 && chunk.length - offset >= BLOCK) {
        header = chunk.subarray(offset, offset + BLOCK);
        offset += BLOCK;
      } else {
        const n = Math.min(BLOCK - this.headerFill, chunk.length - offset);
        chunk.copy(this.header, this.headerFill, offset, offset + n);
        this.headerFill += n;
        offset += n;
        if (this.headerFill < BLOCK) continue;
        header = Buffer.from(this.header);
        this.headerFill = 0;
      }
      this.onHeader(header);
    }
  }

  private onHeader(header: Buffer): void {
    if (header.every((b) => b === 0)) {
      // The end-of-archive blocks: they and whatever follows pass as they are.
      this.ended = true;
      this.emit(header);
      return;
    }
    const type = String.fromCharCode(header[156] ?? 0x30);
    const size = sizeOf(header);
    const padded = Math.ceil(size / BLOCK) * BLOCK;
    if (type === 'x' || type === 'L' || type === 'K') {
      this.meta = { header: Buffer.from(header), body: [], left: padded, type };
      if (padded === 0) this.finishMeta();
      return;
    }
    const path = this.metaPath ?? nameOf(header);
    const contents = Math.ceil((this.metaSize ?? size) / BLOCK) * BLOCK;
    // A global pax header describes no entry of its own.
    this.passing = type === 'g' || !this.dropped(path);
    if (this.passing) {
      for (const record of this.pendingMeta) this.emit(record);
      this.emit(header);
    }
    this.pendingMeta = [];
    this.metaPath = null;
    this.metaSize = null;
    this.remaining = contents;
  }

  private finishMeta(): void {
    const meta = this.meta;
    if (!meta) return;
    this.meta = null;
    const body = Buffer.concat(meta.body);
    this.pendingMeta.push(meta.header, body);
    const size = sizeOf(meta.header);
    if (meta.type === 'L') this.metaPath = body.subarray(0, size).toString('utf8').replace(/\0.*$/s, '');
    if (meta.type === 'x') {
      const records = parsePax(body.subarray(0, size));
      if (records.path !== undefined) this.metaPath = records.path;
      if (records.size !== undefined) this.metaSize = Number(records.size);
    }
  }
}

/** `drop` for TarEntrySieve: every entry in one of `dirs` (paths as the archive names them), and the folders themselves. */
export function inFolders(dirs: readonly string[]): (path: string) => boolean {
  return (name) => {
    const trimmed = name.replace(/\/$/, '');
    return dirs.some((dir) => trimmed === dir || trimmed.startsWith(`${dir}/`));
  };
}

function field(header: Buffer, start: number, length: number): string {
  const raw = header.subarray(start, start + length);
  const end = raw.indexOf(0);
  return raw.subarray(0, end === -1 ? length : end).toString('utf8');
}

/** The header's size: octal digits, or base-256 (high bit set) for sizes octal cannot hold. */
function sizeOf(header: Buffer): number {
  if (((header[124] ?? 0) & 0x80) !== 0) {
    let value = 0;
    for (let i = 125; i < 136; i++) value = value * 256 + (header[i] ?? 0);
    return value;
  }
  const digits = field(header, 124, 12).trim();
  return digits === '' ? 0 : parseInt(digits, 8);
}

function nameOf(header: Buffer): string {
  const name = field(header, 0, 100);
  const ustar = field(header, 257, 6).startsWith('ustar');
  const prefix = ustar ? field(header, 345, 155) : '';
  return prefix ? `${prefix}/${name}` : name;
}

/** pax records: "<length> <key>=<value>\n", one after another. */
function parsePax(body: Buffer): Record<string, string> {
  const records: Record<string, string> = {};
  let offset = 0;
  while (offset < body.length) {
    const space = body.indexOf(0x20, offset);
    if (space === -1) break;
    const length = parseInt(body.subarray(offset, space).toString('ascii'), 10);
    if (!Number.isFinite(length) || length <= 0) break;
    const record = body.subarray(space + 1, offset + length - 1).toString('utf8');
    const equals = record.indexOf('=');
    if (equals > 0) records[record.slice(0, equals)] = record.slice(equals + 1);
    offset += length;
  }
  return records;
}
