import type { Db } from '../database';
import type { Language, Role, UserStatus } from '../../domain/accountRules';

export interface User {
  id: string;
  username: string;
  displayName: string;
  email: string | null;
  role: Role;
  status: UserStatus;
  passwordHash: string;
  mustChangePassword: boolean;
  createdAt: number;
  updatedAt: number;
  lastLoginAt: number | null;
  /** The language mails to this user are written in; null: never chosen (English). */
  language: Language | null;
}

interface UserRow {
  id: string;
  username: string;
  display_name: string;
  email: string | null;
  role: Role;
  status: UserStatus;
  password_hash: string;
  must_change_password: number;
  created_at: number;
  updated_at: number;
  last_login_at: number | null;
  language: Language | null;
}

const toUser = (row: UserRow): User => ({
  id: row.id,
  username: row.username,
  displayName: row.display_name,
  email: row.email,
  role: row.role,
  status: row.status,
  passwordHash: row.password_hash,
  mustChangePassword: row.must_change_password === 1,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
  lastLoginAt: row.last_login_at,
  language: row.language,
});

export interface UserProfileChange {
  displayName?: string;
  email?: string | null;
  role?: Role;
  status?: UserStatus;
}

export interface UserListQuery {
  search?: string;
  role?: Role;
  status?: UserStatus;
  limit: number;
  offset: number;
}

function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}

export class UserRepository {
  constructor(private readonly db: Db) {}

  insert(user: User): void {
    this.db
      .prepare(
        `INSERT INTO users (id, username, display_name, email, role, status, password_hash,
           must_change_password, created_at, updated_at, last_login_at, language)
         VALUES (@id, @username, @displayName, @email, @role, @status, @passwordHash,
           @mustChangePassword, @createdAt, @updatedAt, @lastLoginAt, @language)`,
      )
      .run({ ...user, mustChangePassword: user.mustChangePassword ? 1 : 0 });
  }

  findById(id: string): User | null {
    const row = this.db.prepare('SELECT * FROM users WHERE id = ?').get(id) as UserRow | undefined;
    return row ? toUser(row) : null;
  }

  findByUsername(username: string): User | null {
    const row = this.db.prepare('SELECT * FROM users WHERE username = ?').get(username) as UserRow | undefined;
    return row ? toUser(row) : null;
  }

  /** Accounts whose email is this one, compared without case (emails are not unique). */
  findByEmail(email: string): User[] {
    const rows = this.db.prepare('SELECT * FROM users WHERE lower(email) = lower(?) ORDER BY created_at').all(email) as UserRow[];
    return rows.map(toUser);
  }

  usernameExists(username: string): boolean {
    return this.db.prepare('SELECT 1 FROM users WHERE username = ?').get(username) !== undefined;
  }

  countAdmins(): number {
    const row = this.db.prepare(`SELECT COUNT(*) AS n FROM users WHERE role = 'admin'`).get() as { n: number };
    return row.n;
  }

  countActiveAdmins(): number {
    const row = this.db
      .prepare(`SELECT COUNT(*) AS n FROM users WHERE role = 'admin' AND status = 'active'`)
      .get() as { n: number };
    return row.n;
  }

  list(query: UserListQuery): { items: User[]; total: number } {
    const where: string[] = [];
    const params: Record<string, string | number> = { limit: query.limit, offset: query.offset };
    if (query.search) {
      where.push(`(username LIKE @search ESCAPE '\\' OR display_name LIKE @search ESCAPE '\\' OR email LIKE @search ESCAPE '\\')`);
      params.search = `%${escapeLike(query.search)}%`;
    }
    if (query.role) {
      where.push('role = @role');
      params.role = query.role;
    }
    if (query.status) {
      where.push('status = @status');
      params.status = query.status;
    }
    const clause = where.length > 0 ? `WHERE ${where.join(' AND ')}` : '';
    const rows = this.db
      .prepare(`SELECT * FROM users ${clause} ORDER BY username LIMIT @limit OFFSET @offset`)
      .all(params) as UserRow[];
    const { n } = this.db.prepare(`SELECT COUNT(*) AS n FROM users ${clause}`).get(params) as { n: number };
    return { items: rows.map(toUser), total: n };
  }

  updateProfile(id: string, change: UserProfileChange, now: number): void {
    const sets: string[] = ['updated_at = @now'];
    const params: Record<string, string | number | null> = { id, now };
    if (change.displayName !== undefined) {
      sets.push('display_name = @displayName');
      params.displayName = change.displayName;
    }
    if (change.email !== undefined) {
      sets.push('email = @email');
      params.email = change.email;
    }
    if (change.role !== undefined) {
      sets.push('role = @role');
      params.role = change.role;
    }
    if (change.status !== undefined) {
      sets.push('status = @status');
      params.status = change.status;
    }
    this.db.prepare(`UPDATE users SET ${sets.join(', ')} WHERE id = @id`).run(params);
  }

  setPassword(id: string, passwordHash: string, mustChangePassword: boolean, now: number): void {
    this.db
      .prepare('UPDATE users SET password_hash = ?, must_change_password = ?, updated_at = ? WHERE id = ?')
      .run(passwordHash, mustChangePassword ? 1 : 0, now, id);
  }

  /** A preference, not a profile change: updated_at stays. */
  setLanguage(id: string, language: Language): void {
    this.db.prepare('UPDATE users SET language = ? WHERE id = ?').run(language, id);
  }

  /** Who hears about the installation's troubles (failed backups, crash loops): active admins with an address. */
  activeAdminsWithEmail(): User[] {
    const rows = this.db
      .prepare(`SELECT * FROM users WHERE role = 'admin' AND status = 'active' AND email IS NOT NULL AND email <> '' ORDER BY username`)
      .all() as UserRow[];
    return rows.map(toUser);
  }

  recordLogin(id: string, now: number): void {
    this.db.prepare('UPDATE users SET last_login_at = ? WHERE id = ?').run(now, id);
  }

  delete(id: string): void {
    this.db.prepare('DELETE FROM users WHERE id = ?').run(id);
  }
}
