import { memo, useId, useState } from 'react';
import type { Translate } from '../i18n/i18n';
import { formatBytes, formatRate, share } from '../lib/format';
import type { TransferRow, TransferSnapshot } from '../lib/uploadQueue';
import { Button, ConfirmDialog, ProgressBar } from '../ui/ui';
import { transferErrorText } from './errors';

/** What the panel may do with the queue (the UploadQueue itself in the page). */
export interface TransferControls {
  cancel(id: number): void;
  cancelAll(): void;
  retry(id: number): void;
  overwrite(id: number): void;
  skip(id: number): void;
  overwriteAllConflicts(): void;
  skipAllConflicts(): void;
  clearFinished(): void;
}

/**
 * One row per file being uploaded: its progress, bytes and speed, a way to cancel it, and when
 * it failed, why and what can be done (retry; overwrite or skip a name that is taken).
 */
export function TransferPanel({ snapshot, controls, t, locale }: { snapshot: TransferSnapshot; controls: TransferControls; t: Translate; locale: string }) {
  const titleId = useId();
  const [asking, setAsking] = useState<'cancelAll' | 'overwriteAll' | null>(null);
  const { rows, counts, active, conflicts } = snapshot;
  const total = rows.length;
  const finished = total - active;
  return (
    <section id="transfers" className="card files-transfers" aria-labelledby={titleId}>
      <header className="card-header">
        <h2 id={titleId}>{t('files.transfers.title')}</h2>
        <div className="card-actions">
          {conflicts > 0 && (
            <>
              <Button onClick={() => setAsking('overwriteAll')}>{t('files.transfers.overwriteAll', { count: conflicts })}</Button>
              <Button onClick={() => controls.skipAllConflicts()}>{t('files.transfers.skipAll', { count: conflicts })}</Button>
            </>
          )}
          {active > 0 && <Button onClick={() => (active > 1 ? setAsking('cancelAll') : controls.cancelAll())}>{t('files.transfers.cancelAll')}</Button>}
          {finished > 0 && (
            <Button variant="ghost" onClick={() => controls.clearFinished()}>
              {t('files.transfers.clear')}
            </Button>
          )}
        </div>
      </header>
      <div className="files-transfers-summary">
        {/* Only the counts are announced: bytes and speed change every frame. */}
        <span aria-live="polite">
          {t('files.transfers.summary', { done: counts.done, total })}
          {counts.failed > 0 && ` · ${t('files.transfers.failedCount', { count: counts.failed })}`}
          {counts.cancelled > 0 && ` · ${t('files.transfers.cancelledCount', { count: counts.cancelled })}`}
        </span>
        <span className="muted">
          {formatBytes(snapshot.bytesDone, locale)} / {formatBytes(snapshot.bytesTotal, locale)}
          {active > 0 && snapshot.rate > 0 && ` · ${formatRate(snapshot.rate, locale)}`}
        </span>
      </div>
      {active > 0 && <ProgressBar value={share(snapshot.bytesDone, snapshot.bytesTotal)} label={t('files.transfers.overall')} />}
      <ul className="files-transfer-list">
        {rows.map((row) => (
          <TransferItem key={row.id} row={row} controls={controls} t={t} locale={locale} />
        ))}
      </ul>
      {/* Mounted only while asking: one confirmation dialog in the document at a time. */}
      {asking && (
        <ConfirmDialog
          open
          title={asking === 'cancelAll' ? t('files.transfers.cancelAllTitle') : t('files.transfers.overwriteAllTitle', { count: conflicts })}
          confirmLabel={asking === 'cancelAll' ? t('files.transfers.cancelAllConfirm') : t('files.transfers.overwriteAllConfirm')}
          onConfirm={async () => (asking === 'cancelAll' ? controls.cancelAll() : controls.overwriteAllConflicts())}
          onClose={() => setAsking(null)}
        >
          <p>{asking === 'cancelAll' ? t('files.transfers.cancelAllBody', { count: active }) : t('files.transfers.overwriteAllBody')}</p>
        </ConfirmDialog>
      )}
    </section>
  );
}

function statusText(t: Translate, row: TransferRow): string {
  switch (row.state) {
    case 'queued':
      return t('files.transfer.queued');
    case 'uploading':
      return row.loaded >= row.size ? t('files.transfer.finishing') : `${Math.floor(share(row.loaded, row.size) * 100)}%`;
    case 'done':
      return t('files.transfer.done');
    case 'failed':
      return t('files.transfer.failed');
    case 'cancelled':
      return row.skipped ? t('files.transfer.skipped') : t('files.transfer.cancelled');
  }
}

/** Memoised: the queue keeps an unchanged row the same object, so only moving rows render each frame. */
const TransferItem = memo(function TransferItem({ row, controls, t, locale }: { row: TransferRow; controls: TransferControls; t: Translate; locale: string }) {
  const name = row.name;
  const active = row.state === 'queued' || row.state === 'uploading';
  const canOverwrite = row.state === 'failed' && row.error?.conflict === 'exists';
  const canRetry = (row.state === 'failed' && !row.error?.conflict) || (row.state === 'cancelled' && !row.skipped);
  return (
    <li className={`files-transfer files-transfer-${row.state}`} data-testid="transfer-row" data-state={row.state} data-name={name} data-path={row.path}>
      <div className="files-transfer-line">
        <span className="files-transfer-name" title={row.path}>
          {name}
        </span>
        <span className="files-transfer-status">{statusText(t, row)}</span>
      </div>
      <ProgressBar value={row.state === 'done' ? 1 : share(row.loaded, row.size)} label={t('files.transfer.progress', { name })} />
      <div className="files-transfer-line">
        <span className="muted">
          {formatBytes(row.loaded, locale)} / {formatBytes(row.size, locale)}
          {row.rate > 0 && (row.state === 'uploading' || row.state === 'done') && ` · ${formatRate(row.rate, locale)}`}
        </span>
        <span className="files-transfer-actions">
          {active && (
            <Button variant="ghost" aria-label={t('files.transfer.cancelNamed', { name })} onClick={() => controls.cancel(row.id)}>
              {t('common.cancel')}
            </Button>
          )}
          {canOverwrite && (
            <>
              <Button variant="ghost" aria-label={t('files.transfer.overwriteNamed', { name })} onClick={() => controls.overwrite(row.id)}>
                {t('files.transfer.overwrite')}
              </Button>
              <Button variant="ghost" aria-label={t('files.transfer.skipNamed', { name })} onClick={() => controls.skip(row.id)}>
                {t('files.transfer.skip')}
              </Button>
            </>
          )}
          {canRetry && (
            <Button variant="ghost" aria-label={t('files.transfer.retryNamed', { name })} onClick={() => controls.retry(row.id)}>
              {t('files.transfer.retry')}
            </Button>
          )}
        </span>
      </div>
      {row.state === 'failed' && row.error && <p className="files-transfer-error">{transferErrorText(t, row.error, locale)}</p>}
    </li>
  );
});
