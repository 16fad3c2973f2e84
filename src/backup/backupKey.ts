import fs from 'node:fs';
import { AgeError, parseIdentity, type AgeIdentity } from './ageFormat';

export class BackupKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BackupKeyError';
  }
}

/**
 * The operator's backup key: an age identity file (`age-keygen` writes them, and so does
 * `npm run admin -- backup-keygen`). Refused when others may read it: whoever reads it reads
 * every backup.
 */
export function loadBackupKey(file: string): AgeIdentity {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch {
    throw new BackupKeyError(`CLAWLOOPS_BACKUP_KEY_FILE: ${file} does not exist (create one with \`npm run admin -- backup-keygen ${file}\`).`);
  }
  if ((stat.mode & 0o077) !== 0) throw new BackupKeyError(`CLAWLOOPS_BACKUP_KEY_FILE: ${file} may be read by others (mode ${(stat.mode & 0o777).toString(8)}); chmod 600 it.`);
  try {
    return parseIdentity(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new BackupKeyError(`CLAWLOOPS_BACKUP_KEY_FILE: ${file} is not an age identity file: ${err instanceof AgeError ? err.message : String(err)}.`);
  }
}
