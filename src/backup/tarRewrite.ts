import { PassThrough, type Readable } from 'node:stream';
import { extract, pack, type Header } from 'tar-stream';

/** A header to write (pack fills in what is left out). */
export type NewHeader = Partial<Header> & Pick<Header, 'name'>;

/** What becomes of one entry: written with this header, left out, or the end of the whole archive. */
export type EntryRewrite = NewHeader | 'skip' | Error;

/**
 * A tar stream entry by entry into another, each header passed through `rewrite` (file bytes
 * unchanged, streamed); `prologue` entries (folders) go first. A failure anywhere (the source,
 * a rewrite's Error, the consumer) destroys the output with it.
 */
export function rewriteTar(source: Readable, rewrite: (header: Header) => EntryRewrite, prologue: NewHeader[] = []): Readable {
  const input = extract();
  const output = pack();
  for (const header of prologue) output.entry(header);
  input.on('entry', (header, stream, next) => {
    // Errors reach the caller through `out`; an entry's own stream would otherwise throw them again.
    stream.on('error', () => undefined);
    const rewritten = rewrite(header);
    if (rewritten instanceof Error) {
      input.destroy(rewritten);
      return;
    }
    if (rewritten === 'skip') {
      stream.on('end', next).resume();
      return;
    }
    const sink = output.entry(rewritten, (err) => (err ? input.destroy(err) : next()));
    sink.on('error', () => undefined);
    stream.pipe(sink);
  });
  input.on('finish', () => output.finalize());
  input.on('error', (err) => output.destroy(err));
  source.on('error', (err) => input.destroy(err));
  source.pipe(input);
  const out = new PassThrough({ highWaterMark: 1024 * 1024 });
  output.on('error', (err) => out.destroy(err));
  output.pipe(out);
  return out;
}
