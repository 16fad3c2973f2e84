/**
 * Which scheduled backups to keep: the newest of each of the last `keepDaily` days that have one,
 * and the newest of each of the last `keepWeekly` weeks (ISO weeks, Monday first, UTC) that have
 * one. Everything else may go. Backups an administrator took by hand are not passed in: retention
 * never removes them.
 */
export function backupsToRemove(backups: readonly { id: string; createdAt: string }[], keepDaily: number, keepWeekly: number): string[] {
  const newestFirst = [...backups].sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt));
  const keep = new Set<string>();
  const days = new Set<string>();
  const weeks = new Set<string>();
  for (const backup of newestFirst) {
    const at = new Date(backup.createdAt);
    const day = at.toISOString().slice(0, 10);
    const week = isoWeek(at);
    if (!days.has(day) && days.size < keepDaily) {
      days.add(day);
      keep.add(backup.id);
    }
    if (!weeks.has(week) && weeks.size < keepWeekly) {
      weeks.add(week);
      keep.add(backup.id);
    }
    // A day or week already represented by a newer backup adds nothing.
    days.add(day);
    weeks.add(week);
  }
  return newestFirst.filter((b) => !keep.has(b.id)).map((b) => b.id);
}

/** "2026-W49": the ISO week a moment falls in (UTC). */
function isoWeek(at: Date): string {
  const date = new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), at.getUTCDate()));
  const weekday = date.getUTCDay() || 7;
  date.setUTCDate(date.getUTCDate() + 4 - weekday);
  const yearStart = Date.UTC(date.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((date.getTime() - yearStart) / 86_400_000 + 1) / 7);
  return `${date.getUTCFullYear()}-W${String(week).padStart(2, '0')}`;
}
