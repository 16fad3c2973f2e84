/**
 * Splits a Server-Sent Events byte stream, as it arrives in chunks, into events. Only what our
 * own streams send: one `event:` line and one `data:` line per event; comments and `retry:` are
 * skipped. Shared by the tests and the benchmarks (no jest here).
 */
export class SseParser {
  private buffer = '';

  /** Feeds a chunk; returns the events it completed, in order. */
  push(chunk: string): { event: string; data: string }[] {
    this.buffer += chunk;
    const events: { event: string; data: string }[] = [];
    let cut: number;
    while ((cut = this.buffer.indexOf('\n\n')) >= 0) {
      const block = this.buffer.slice(0, cut);
      this.buffer = this.buffer.slice(cut + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (event && data !== undefined) events.push({ event, data });
    }
    return events;
  }
}
