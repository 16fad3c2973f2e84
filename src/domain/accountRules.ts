import { badRequest } from '../lib/errors';

/**
 * A username becomes the user's workspace host name (`alice.<domain>`), so it must be a valid
 * DNS label: the pattern from the product spec, plus no trailing hyphen (DNS forbids it).
 */
export const USERNAME_PATTERN = /^[a-z0-9][a-z0-9-]{1,30}$/;

export function usernameProblem(username: string): string | null {
  if (!USERNAME_PATTERN.test(username)) {
    return 'Username must be 2–31 characters: lowercase letters a–z, digits and hyphens, starting with a letter or digit.';
  }
  if (username.endsWith('-')) return 'Username must not end with a hyphen (it becomes a host name).';
  return null;
}

/** Usernames are case-insensitive for people typing them; stored and compared in lowercase. */
export function normalizeUsername(input: string): string {
  return input.trim().toLowerCase();
}

export function assertValidUsername(username: string): void {
  const problem = usernameProblem(username);
  if (problem) throw badRequest('INVALID_USERNAME', problem);
}

export const PASSWORD_MIN_LENGTH = 10;
// Bounded so a megabyte "password" cannot make hashing a denial-of-service vector.
export const PASSWORD_MAX_LENGTH = 256;

// The most common passwords of at least 10 characters from public breach corpora, plus the
// product's own name: the ones a policy of "10 characters" alone would still let through.
const COMMON_PASSWORDS = new Set([
  '1234567890', '0123456789', '12345678910', '123456789a', 'qwertyuiop', 'qwerty1234', 'qwerty12345',
  '1q2w3e4r5t', '1qaz2wsx3edc', 'password12', 'password123', 'password1234', 'password!', 'passw0rd12',
  'iloveyou12', 'abcdefghij', 'abcd123456', 'abc1234567', 'a123456789', 'qazwsxedc123', '1111111111',
  '0000000000', '9876543210', 'asdfghjkl1', 'asdfghjkl;', 'zxcvbnm123', 'football12', 'baseball12',
  'basketball', 'superman12', 'starwars12', 'princess12', 'sunshine12', 'welcome123', 'welcome1234',
  'changeme123', 'changeme12', 'letmein123', 'administrator', 'admin12345', 'admin123456', 'adminadmin',
  'trustno1234', 'monkey1234', 'dragon1234', 'master1234', 'shadow1234', 'michael123', 'jennifer12',
  'qwertyuiop1', 'q1w2e3r4t5', 'password01', 'p@ssw0rd12', 'p@ssword123', 'secret1234', 'default123',
  'clawloops1', 'clawloops12', 'clawloops123', 'openclaw123', 'openclaw1234', 'aaaaaaaaaa', 'zaq12wsxcde',
]);

/** Returns a sentence saying why the password is not acceptable, or null when it is. */
export function passwordProblem(password: string, username: string | null): string | null {
  if (password.length < PASSWORD_MIN_LENGTH) {
    return `Password must be at least ${PASSWORD_MIN_LENGTH} characters long.`;
  }
  if (password.length > PASSWORD_MAX_LENGTH) {
    return `Password must be at most ${PASSWORD_MAX_LENGTH} characters long.`;
  }
  const lowered = password.toLowerCase();
  if (username) {
    const name = username.toLowerCase();
    // "alice" / "alice2024!" are the username in disguise; a long passphrase that merely contains it is fine.
    if (lowered === name || (lowered.includes(name) && lowered.replace(name, '').length < 6)) {
      return 'Password must not be the username or a small variation of it.';
    }
  }
  if (COMMON_PASSWORDS.has(lowered)) return 'Password is too common; choose another one.';
  if (new Set(password).size < 4) return 'Password has too few distinct characters.';
  return null;
}

export function assertAcceptablePassword(password: string, username: string | null): void {
  const problem = passwordProblem(password, username);
  if (problem) throw badRequest('WEAK_PASSWORD', problem);
}

/** Passwords are compared after NFC normalization so the same typed text always matches. */
export function normalizePassword(password: string): string {
  return password.normalize('NFC');
}

export type Role = 'admin' | 'member';
export type UserStatus = 'active' | 'disabled';
export const ROLES: readonly Role[] = ['admin', 'member'];
export const USER_STATUSES: readonly UserStatus[] = ['active', 'disabled'];

/** The languages the console and the platform's mails are written in. */
export const LANGUAGES = ['en', 'zh-CN'] as const;
export type Language = (typeof LANGUAGES)[number];
