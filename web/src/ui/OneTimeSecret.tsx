import { useEffect, useId, useRef, useState } from 'react';
import { useI18n } from '../i18n/i18n';
import { Button } from './ui';

/**
 * A secret (invitation link, temporary password, API token) shown once: a read-only field to select, a
 * Copy button, and the warning that it will not be shown again.
 */
export function OneTimeSecret({ id, label, value, note, onDone }: { id?: string; label: string; value: string; note: string; onDone: () => void }) {
  const { t } = useI18n();
  const generated = useId();
  const fieldId = id ?? generated;
  const input = useRef<HTMLInputElement>(null);
  const [copy, setCopy] = useState<'idle' | 'copied' | 'failed'>('idle');
  useEffect(() => {
    // Once the confirmation dialog that led here has closed (and handed focus back to its button).
    let frame = 0;
    let frames = 0;
    const focus = () => {
      if (document.querySelector('dialog[open]') && frames++ < 300) {
        frame = requestAnimationFrame(focus);
        return;
      }
      input.current?.focus();
      input.current?.select();
    };
    frame = requestAnimationFrame(focus);
    return () => cancelAnimationFrame(frame);
  }, [value]);
  const doCopy = async () => {
    try {
      if (!navigator.clipboard) throw new Error('no clipboard');
      await navigator.clipboard.writeText(value);
      setCopy('copied');
    } catch {
      input.current?.select();
      setCopy('failed');
    }
  };
  return (
    <div className="secret" role="group" aria-labelledby={`${fieldId}-label`}>
      <label id={`${fieldId}-label`} htmlFor={fieldId} className="secret-label">
        {label}
      </label>
      <div className="secret-row">
        <input id={fieldId} ref={input} readOnly value={value} aria-describedby={`${fieldId}-note`} onFocus={(e) => e.currentTarget.select()} spellCheck={false} />
        <Button variant="primary" onClick={() => void doCopy()}>
          {t('secret.copy')}
        </Button>
      </div>
      <p id={`${fieldId}-note`} className="secret-note">
        {note}
      </p>
      <p role="status" className="muted">
        {copy === 'copied' ? t('secret.copied') : copy === 'failed' ? t('secret.copyFailed') : ''}
      </p>
      <div className="actions">
        <Button onClick={onDone}>{t('secret.done')}</Button>
      </div>
    </div>
  );
}
