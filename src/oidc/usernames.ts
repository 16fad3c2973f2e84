import { usernameProblem } from '../domain/accountRules';

/**
 * A username that follows the username rules (accountRules.ts) from whatever a provider calls a
 * person ("Zoë.Müller", "zoe@example.com", "张伟"): lowercase ASCII, other characters to hyphens,
 * an email's domain dropped. Null when nothing usable is left.
 */
export function usernameFromClaim(value: string): string | null {
  const local = value.includes('@') ? (value.split('@')[0] ?? '') : value;
  const ascii = local
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-{2,}/g, '-')
    .replace(/^-+/, '')
    .slice(0, 31)
    .replace(/-+$/, '');
  return usernameProblem(ascii) === null ? ascii : null;
}

/** `base` if free, otherwise `base-2`, `base-3`… cut so the whole stays a valid username. */
export function freeUsername(base: string, taken: (username: string) => boolean): string {
  if (!taken(base)) return base;
  for (let n = 2; ; n++) {
    const suffix = `-${n}`;
    const candidate = `${base.slice(0, 31 - suffix.length).replace(/-+$/, '')}${suffix}`;
    if (!taken(candidate)) return candidate;
  }
}
