import { Transform, type TransformCallback } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import type { LogLine } from './runtimeBackend';

/** Longer lines are cut here (and marked): a runtime writing one endless line costs at most this much. */
export const MAX_LOG_LINE_BYTES = 16 * 1024;
const HEADER_BYTES = 8;
/** Lines a reader has not taken yet: beyond this the engine's stream is no longer read (backpressure). */
const QUEUED_LINES = 64;

interface LineState {
  readonly stream: LogLine['stream'];
  pending: Buffer[];
  pendingBytes: number;
  /** Past the cap: the rest of this line is dropped until its newline. */
  skipping: boolean;
}

/**
 * Reads the engine's multiplexed log stream (8-byte frame headers, stdout and stderr interleaved)
 * into lines, with bounded memory whatever the runtime writes: a line is at most
 * MAX_LOG_LINE_BYTES (the rest is dropped, the line marked `truncated`), and as a Transform it
 * stops reading the engine while its reader is slow. Docker's own demuxer writes into its outputs
 * without ever waiting, and concatenates every frame into one buffer.
 */
export class DockerLogLines extends Transform {
  private header = Buffer.alloc(0);
  private frameStream: LineState | null = null;
  private frameLeft = 0;
  private readonly states: Record<LogLine['stream'], LineState> = {
    stdout: { stream: 'stdout', pending: [], pendingBytes: 0, skipping: false },
    stderr: { stream: 'stderr', pending: [], pendingBytes: 0, skipping: false },
  };

  constructor() {
    super({ readableObjectMode: true, readableHighWaterMark: QUEUED_LINES });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.frameLeft === 0) {
        const need = HEADER_BYTES - this.header.length;
        this.header = Buffer.concat([this.header, chunk.subarray(offset, offset + need)]);
        offset += Math.min(need, chunk.length - offset);
        if (this.header.length < HEADER_BYTES) break;
        // 1 stdout, 2 stderr (0 would be stdin, never in a log).
        this.frameStream = this.header[0] === 2 ? this.states.stderr : this.states.stdout;
        this.frameLeft = this.header.readUInt32BE(4);
        this.header = Buffer.alloc(0);
        continue;
      }
      const take = Math.min(this.frameLeft, chunk.length - offset);
      if (this.frameStream) this.feed(this.frameStream, chunk.subarray(offset, offset + take));
      offset += take;
      this.frameLeft -= take;
    }
    done();
  }

  override _flush(done: TransformCallback): void {
    for (const state of Object.values(this.states)) if (state.pendingBytes > 0 && !state.skipping) this.emitLine(state, false);
    done();
  }

  private feed(state: LineState, data: Buffer): void {
    let start = 0;
    for (;;) {
      const newline = data.indexOf(0x0a, start);
      const end = newline === -1 ? data.length : newline;
      if (!state.skipping) {
        const room = MAX_LOG_LINE_BYTES - state.pendingBytes;
        if (end - start > room) {
          // Shown now, cut: the end of such a line may never come. The rest is dropped.
          this.append(state, data.subarray(start, start + room));
          this.emitLine(state, true);
          state.skipping = true;
        } else this.append(state, data.subarray(start, end));
      }
      if (newline === -1) return;
      if (state.skipping) state.skipping = false;
      else this.emitLine(state, false);
      start = newline + 1;
    }
  }

  private append(state: LineState, piece: Buffer): void {
    if (piece.length === 0) return;
    state.pending.push(piece);
    state.pendingBytes += piece.length;
  }

  private emitLine(state: LineState, truncated: boolean): void {
    // A character cut at the cap is dropped (the decoder keeps an incomplete one back) rather than shown as garbage.
    const text = new StringDecoder('utf8').write(Buffer.concat(state.pending, state.pendingBytes)).replace(/\r$/, '');
    state.pending = [];
    state.pendingBytes = 0;
    const line: LogLine = truncated ? { stream: state.stream, line: text, truncated: true } : { stream: state.stream, line: text };
    this.push(line);
  }
}
