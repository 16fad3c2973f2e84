import { ApiError } from '../api/client';
import type { Translate } from '../i18n/i18n';
import { formatBytes } from '../lib/format';
import type { TransferError } from '../lib/uploadQueue';
import { messageOf } from '../ui/ui';

const num = (value: unknown): number | null => (typeof value === 'number' && Number.isFinite(value) ? value : null);

/** Why a file did not upload, in the user's language where we know the reason, else in the server's words. */
export function transferErrorText(t: Translate, error: TransferError, locale: string): string {
  if (error.conflict === 'exists') return t('files.error.exists');
  if (error.conflict === 'is-directory') return t('files.error.isDirectory');
  if (error.conflict === 'blocked-by-file') return t('files.error.blockedByFile');
  const { details } = error;
  switch (error.code) {
    case 'QUOTA_EXCEEDED': {
      const free = num(details.availableBytes);
      const quota = num(details.quotaBytes);
      return free !== null && quota !== null ? t('files.error.quota', { free: formatBytes(free, locale), quota: formatBytes(quota, locale) }) : t('files.error.quotaPlain');
    }
    case 'FILE_TOO_LARGE': {
      const limit = num(details.limitBytes);
      return limit !== null ? t('files.error.fileTooLarge', { limit: formatBytes(limit, locale) }) : error.message;
    }
    case 'REQUEST_TOO_LARGE': {
      const limit = num(details.limitBytes);
      return limit !== null ? t('files.error.requestTooLarge', { limit: formatBytes(limit, locale) }) : error.message;
    }
    case 'NO_SPACE':
      return t('files.error.noSpace');
    case 'NETWORK':
      return t('files.error.network');
    case 'TIMEOUT':
      return t('files.error.timeout');
    case 'RUNTIME_CHANGED':
      return t('files.error.runtimeChanged');
    default:
      if (error.status === 401) return t('files.error.signedOut');
      return error.message;
  }
}

/** An API error of a file action, in words; the known refusals of text editing in the user's language. */
export function actionErrorText(t: Translate, error: unknown): string {
  if (error instanceof ApiError) {
    // A body over the text limit is refused by the body parser (413) before the service's own check.
    if (error.code === 'TEXT_TOO_LARGE' || error.status === 413) return t('files.text.tooLarge');
    if (error.code === 'NOT_TEXT') return t('files.text.notText');
    if (error.code === 'NETWORK') return t('files.error.network');
  }
  return messageOf(error);
}
