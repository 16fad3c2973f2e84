import type { StoppedBy } from '../api/types';
import type { MessageKey } from '../i18n/en';
import { formatDateTime } from './format';

// The console's `Translate`, named structurally: this module stays free of React (tests import it under Node).
type Translate = (key: MessageKey, params: Record<string, string | number>) => string;

const KEYS: Record<StoppedBy['cause'], MessageKey> = {
  member: 'runtime.stoppedBy.member',
  admin: 'runtime.stoppedBy.admin',
  idle: 'runtime.stoppedBy.idle',
  account_disabled: 'runtime.stoppedBy.accountDisabled',
  out_of_memory: 'runtime.stoppedBy.outOfMemory',
  crash_loop: 'runtime.stoppedBy.crashLoop',
  system: 'runtime.stoppedBy.system',
};

/**
 * Who or what stopped a runtime and when, in the reader's language and time zone. `own`: the
 * reader is the runtime's member (their own stop reads "You stopped it"; an administrator reading
 * someone else's card gets the neutral wording).
 */
export function stopReasonText(t: Translate, stoppedBy: StoppedBy, locale: string, own: boolean, adminName: string | null = null): string {
  const time = formatDateTime(stoppedBy.at, locale);
  if (stoppedBy.cause === 'admin' && adminName) return t('runtime.stoppedBy.adminNamed', { time, name: adminName });
  if (stoppedBy.cause === 'member' && own) return t('runtime.stoppedBy.memberOwn', { time });
  if (stoppedBy.cause === 'idle' && stoppedBy.idleMinutes !== null) return t('runtime.stoppedBy.idle', { time, minutes: stoppedBy.idleMinutes });
  // An idle stop whose wait is unknown reads as the platform's own.
  if (stoppedBy.cause === 'idle') return t('runtime.stoppedBy.system', { time });
  return t(KEYS[stoppedBy.cause], { time });
}
