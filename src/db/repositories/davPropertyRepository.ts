import type { Db } from '../database';

/** A WebDAV dead property: its namespace, name and value (XML: the property element's content and the namespaces it needs). */
export interface DavProperty {
  ns: string;
  name: string;
  value: string;
}

/** `path LIKE prefix/%` with the prefix's own wildcards escaped. */
const below = (path: string): string => `${path.replace(/[\\%_]/g, (c) => `\\${c}`)}/%`;

export class DavPropertyRepository {
  constructor(private readonly db: Db) {}

  list(userId: string, path: string): DavProperty[] {
    return this.db.prepare('SELECT ns, name, value FROM dav_properties WHERE user_id = ? AND path = ? ORDER BY ns, name').all(userId, path) as DavProperty[];
  }

  /**
   * The properties of the entry at `path` and of everything below it, by path: one query for a
   * whole PROPFIND (a folder of 10,000 entries was 10,000 queries). Bounded by the per-member cap.
   */
  listWithin(userId: string, path: string): Map<string, DavProperty[]> {
    const rows = (
      path === ''
        ? this.db.prepare('SELECT path, ns, name, value FROM dav_properties WHERE user_id = ? ORDER BY path, ns, name').all(userId)
        : this.db.prepare("SELECT path, ns, name, value FROM dav_properties WHERE user_id = ? AND (path = ? OR path LIKE ? ESCAPE '\\') ORDER BY path, ns, name").all(userId, path, below(path))
    ) as (DavProperty & { path: string })[];
    const byPath = new Map<string, DavProperty[]>();
    for (const { path: at, ns, name, value } of rows) {
      const list = byPath.get(at) ?? [];
      list.push({ ns, name, value });
      byPath.set(at, list);
    }
    return byPath;
  }

  count(userId: string): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM dav_properties WHERE user_id = ?').get(userId) as { n: number }).n;
  }

  set(userId: string, path: string, property: DavProperty): void {
    this.db
      .prepare('INSERT INTO dav_properties (user_id, path, ns, name, value) VALUES (?, ?, ?, ?, ?) ON CONFLICT(user_id, path, ns, name) DO UPDATE SET value = excluded.value')
      .run(userId, path, property.ns, property.name, property.value);
  }

  remove(userId: string, path: string, ns: string, name: string): void {
    this.db.prepare('DELETE FROM dav_properties WHERE user_id = ? AND path = ? AND ns = ? AND name = ?').run(userId, path, ns, name);
  }

  /** The entry at `path` and everything below it. */
  removeTree(userId: string, path: string): void {
    this.db.prepare("DELETE FROM dav_properties WHERE user_id = ? AND (path = ? OR path LIKE ? ESCAPE '\\')").run(userId, path, below(path));
  }

  moveTree(userId: string, from: string, to: string): void {
    this.db
      .prepare("UPDATE dav_properties SET path = ? || substr(path, ?) WHERE user_id = ? AND (path = ? OR path LIKE ? ESCAPE '\\')")
      .run(to, from.length + 1, userId, from, below(from));
  }

  copyTree(userId: string, from: string, to: string, shallow: boolean): void {
    this.db
      .prepare(
        `INSERT OR REPLACE INTO dav_properties (user_id, path, ns, name, value)
         SELECT user_id, ? || substr(path, ?), ns, name, value FROM dav_properties WHERE user_id = ? AND (path = ? OR (? = 0 AND path LIKE ? ESCAPE '\\'))`,
      )
      .run(to, from.length + 1, userId, from, shallow ? 1 : 0, below(from));
  }
}
