/** Display formats shared by the pages; pure functions so they are tested without a browser. */
const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function formatBytes(bytes: number, locale = 'en'): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '—';
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  const digits = unit === 0 || value >= 100 ? 0 : value >= 10 ? 1 : 2;
  return `${value.toLocaleString(locale, { maximumFractionDigits: digits, minimumFractionDigits: 0 })} ${BYTE_UNITS[unit]}`;
}

export function formatRate(bytesPerSecond: number, locale = 'en'): string {
  return `${formatBytes(bytesPerSecond, locale)}/s`;
}

export function formatNumber(value: number, locale = 'en'): string {
  return value.toLocaleString(locale);
}

/** US dollars from microdollars, with cents (or finer for tiny amounts). */
export function formatUsd(microdollars: number, locale = 'en'): string {
  const dollars = microdollars / 1e6;
  // A single call often costs a fraction of a cent: show it rather than $0.00.
  if (dollars !== 0 && Math.abs(dollars) < 0.01) return dollars.toLocaleString(locale, { style: 'currency', currency: 'USD', maximumSignificantDigits: 2 });
  return dollars.toLocaleString(locale, { style: 'currency', currency: 'USD', minimumFractionDigits: 2, maximumFractionDigits: 2 });
}

export function formatDateTime(iso: string | null | undefined, locale = 'en'): string {
  if (!iso) return '—';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? '—' : date.toLocaleString(locale, { dateStyle: 'medium', timeStyle: 'short' });
}

/** 45 s, 12 min, 3 h 5 min, 2 d 4 h. */
export function formatSeconds(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86_400)} d ${Math.floor((s % 86_400) / 3600)} h`;
}

/** A share 0..1 for progress and quota bars, safe against 0 and missing totals. */
export function share(part: number, whole: number | null | undefined): number {
  if (!whole || whole <= 0 || !Number.isFinite(part)) return 0;
  return Math.min(1, Math.max(0, part / whole));
}
