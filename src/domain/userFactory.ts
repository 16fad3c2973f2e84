import type { User, UserRepository } from '../db/repositories/userRepository';
import type { Clock } from '../lib/clock';
import { conflict, badRequest } from '../lib/errors';
import { newId } from '../lib/secrets';
import {
  assertAcceptablePassword,
  assertValidUsername,
  normalizePassword,
  normalizeUsername,
  type Language,
  type Role,
} from './accountRules';
import type { PasswordHasher } from './passwordHasher';

export interface NewUserInput {
  username: string;
  password: string;
  role: Role;
  displayName?: string | null | undefined;
  email?: string | null | undefined;
  mustChangePassword: boolean;
  /** The language the person chose in the console, for the mails they get. */
  language?: Language | null | undefined;
}

// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;

/** Display names are free text in any script, but one line of printable characters. */
export function cleanDisplayName(input: string): string {
  const name = input.normalize('NFC').trim();
  if (name.length < 1 || name.length > 100) throw badRequest('INVALID_DISPLAY_NAME', 'Display name must be 1–100 characters.');
  if (CONTROL_CHARS.test(name)) throw badRequest('INVALID_DISPLAY_NAME', 'Display name must not contain control characters.');
  return name;
}

/**
 * Builds a validated, hashed user that is not yet stored. Hashing is slow and async, so it
 * happens before the caller's (synchronous) transaction inserts the row.
 */
export class UserFactory {
  constructor(
    private readonly users: UserRepository,
    private readonly hasher: PasswordHasher,
    private readonly clock: Clock,
    /** Told of each new account once its row is committed; must not throw (the account exists either way). */
    private readonly onUserCreated: (user: User) => void = () => {},
  ) {}

  /** Call after the transaction that inserted `user` committed. */
  announce(user: User): void {
    this.onUserCreated(user);
  }

  /** `hasher`: the caller's turn at hashing when it is not the factory's own (an unauthenticated caller's). */
  async build(input: NewUserInput, hasher: PasswordHasher = this.hasher): Promise<User> {
    const username = normalizeUsername(input.username);
    assertValidUsername(username);
    const password = normalizePassword(input.password);
    assertAcceptablePassword(password, username);
    // Checked here for a fast answer; insertNew() checks again inside the transaction.
    this.assertUsernameFree(username);
    const displayName = input.displayName ? cleanDisplayName(input.displayName) : username;
    const now = this.clock.now();
    return {
      id: newId(),
      username,
      displayName,
      email: input.email ?? null,
      role: input.role,
      status: 'active',
      passwordHash: await hasher.hash(password),
      mustChangePassword: input.mustChangePassword,
      createdAt: now,
      updatedAt: now,
      lastLoginAt: null,
      language: input.language ?? null,
    };
  }

  /** Call inside a transaction. */
  insertNew(user: User): void {
    this.assertUsernameFree(user.username);
    this.users.insert(user);
  }

  private assertUsernameFree(username: string): void {
    if (this.users.usernameExists(username)) {
      throw conflict('USERNAME_TAKEN', `The username "${username}" is already taken.`);
    }
  }
}
