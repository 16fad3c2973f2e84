/**
 * A pino destination for people at a terminal: each JSON line pino writes becomes
 * `12:34:56.789 INFO  message  key=value …`, with an error's stack on the lines below. It formats
 * what pino has already serialised and redacted, so a secret hidden from the JSON is hidden here
 * too. Written by hand (a few dozen lines) rather than adding pino-pretty and its dependencies.
 */

const LEVELS: Record<number, { label: string; color: string }> = {
  10: { label: 'TRACE', color: '90' },
  20: { label: 'DEBUG', color: '36' },
  30: { label: 'INFO ', color: '32' },
  40: { label: 'WARN ', color: '33' },
  50: { label: 'ERROR', color: '31' },
  60: { label: 'FATAL', color: '35' },
};

// Fields every line carries or that the prefix already shows.
const HIDDEN = new Set(['level', 'time', 'msg', 'service', 'pid', 'hostname']);

function formatValue(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"]+$/.test(value) ? value : JSON.stringify(value);
  return JSON.stringify(value) ?? String(value);
}

function clockTime(time: unknown): string {
  // pino's isoTime: "2026-12-06T17:34:50.123Z"; a terminal reader wants only the clock.
  return typeof time === 'string' && time.length >= 23 ? time.slice(11, 23) : String(time ?? '');
}

/** One JSON log line as a readable line (and stack lines); input that is not a pino line passes unchanged. */
export function formatLogLine(line: string, color: boolean): string {
  let entry: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(line);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return line;
    entry = parsed as Record<string, unknown>;
  } catch {
    return line;
  }
  const level = LEVELS[Number(entry.level)] ?? { label: String(entry.level).padEnd(5), color: '0' };
  const label = color ? `\u001b[${level.color}m${level.label}\u001b[0m` : level.label;
  let stack = '';
  const fields: string[] = [];
  for (const [key, value] of Object.entries(entry)) {
    if (HIDDEN.has(key)) continue;
    if (key === 'err' && typeof value === 'object' && value !== null && 'stack' in value && typeof value.stack === 'string') {
      const { stack: errStack, ...rest } = value as Record<string, unknown>;
      stack = `\n    ${String(errStack).split('\n').join('\n    ')}`;
      fields.push(`err=${formatValue(rest)}`);
      continue;
    }
    fields.push(`${key}=${formatValue(value)}`);
  }
  const msg = typeof entry.msg === 'string' ? entry.msg : '';
  return `${clockTime(entry.time)} ${label} ${msg}${fields.length > 0 ? `  ${fields.join(' ')}` : ''}${stack}`;
}

/** A destination pino writes its JSON lines to; `write` receives the readable text. */
export function prettyLogDestination(write: (text: string) => void, color: boolean): { write(chunk: string): void } {
  return {
    write(chunk: string): void {
      const lines = chunk.split('\n').filter((l) => l.length > 0);
      write(lines.map((l) => `${formatLogLine(l, color)}\n`).join(''));
    },
  };
}
