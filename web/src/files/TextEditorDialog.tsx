import { useCallback, useEffect, useId, useRef, useState, type KeyboardEvent } from 'react';
import { ApiError } from '../api/client';
import type { FileEntry } from '../api/types';
import { useI18n } from '../i18n/i18n';
import { formatBytes } from '../lib/format';
import { Button, Notice } from '../ui/ui';
import { actionErrorText } from './errors';
import { detailsOf, downloadUrl, loadText, saveText } from './filesApi';
import { Modal } from './Modal';

type Load = { status: 'loading' } | { status: 'failed'; error: unknown } | { status: 'ready' };

/**
 * Shows a small text file and lets it be edited. Saving sends the ETag of the version that was
 * loaded: if the file changed meanwhile (the agent wrote it, another tab saved), the server says
 * 412 and the user chooses between their version and the new one; nothing is lost unseen.
 */
export function TextEditorDialog({ entry, onClose, onSaved }: { entry: FileEntry; onClose: () => void; onSaved: () => void }) {
  const { t, locale } = useI18n();
  const editorId = useId();
  const [load, setLoad] = useState<Load>({ status: 'loading' });
  const [content, setContent] = useState('');
  const [original, setOriginal] = useState('');
  const [etag, setEtag] = useState<string | null>(null);
  const [saving, setSaving] = useState(false);
  const [saveError, setSaveError] = useState<unknown>(null);
  const [saved, setSaved] = useState(false);
  /** Set after a 412: the ETag of the version now on disk (null if the file is gone). */
  const [conflict, setConflict] = useState<{ etag: string | null } | null>(null);
  const [confirmDiscard, setConfirmDiscard] = useState(false);
  const abort = useRef<AbortController | null>(null);
  const dirty = load.status === 'ready' && content !== original;

  const reload = useCallback(async () => {
    abort.current?.abort();
    const controller = new AbortController();
    abort.current = controller;
    setLoad({ status: 'loading' });
    setConflict(null);
    setSaveError(null);
    setSaved(false);
    try {
      const text = await loadText(entry.path, controller.signal);
      if (controller.signal.aborted) return;
      setContent(text.content);
      setOriginal(text.content);
      setEtag(text.etag);
      setLoad({ status: 'ready' });
    } catch (err) {
      if ((err as Error).name === 'AbortError') return;
      setLoad({ status: 'failed', error: err });
    }
  }, [entry.path]);

  useEffect(() => {
    void reload();
    return () => abort.current?.abort();
  }, [reload]);

  const save = async (ifMatch: string | null) => {
    setSaving(true);
    setSaveError(null);
    setSaved(false);
    const sent = content;
    try {
      const result = await saveText(entry.path, sent, ifMatch);
      setEtag(result.etag);
      setOriginal(sent);
      setConflict(null);
      setSaved(true);
      onSaved();
    } catch (err) {
      if (err instanceof ApiError && err.status === 412) {
        const current = detailsOf(err).etag;
        setConflict({ etag: typeof current === 'string' ? current : null });
      } else setSaveError(err);
    } finally {
      setSaving(false);
    }
  };

  const requestClose = (): boolean => {
    if (dirty) {
      setConfirmDiscard(true);
      return false;
    }
    return true;
  };

  const onKeyDown = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === 's') {
      event.preventDefault();
      if (dirty && !saving && !conflict) void save(etag);
    }
  };

  return (
    <Modal title={entry.name} onClose={onClose} onCancel={requestClose} wide id="text-editor">
      <p className="muted files-dialog-path">{entry.path}</p>
      {load.status === 'loading' && <p role="status">{t('common.loading')}</p>}
      {load.status === 'failed' && (
        <div className="error-note" role="alert">
          <p>{actionErrorText(t, load.error)}</p>
          <a href={downloadUrl(entry.path)} download>
            {t('files.action.downloadNamed', { name: entry.name })}
          </a>
        </div>
      )}
      {load.status === 'ready' && (
        <>
          <label htmlFor={editorId} className="visually-hidden">
            {t('files.text.label', { name: entry.name })}
          </label>
          <textarea
            id={editorId}
            className="files-editor"
            value={content}
            onChange={(e) => {
              setContent(e.target.value);
              setSaved(false);
            }}
            onKeyDown={onKeyDown}
            spellCheck={false}
            autoCapitalize="off"
            autoComplete="off"
            rows={18}
            readOnly={conflict !== null}
          />
          <p className="muted files-editor-meta">
            {t('files.text.size', { size: formatBytes(new TextEncoder().encode(content).length, locale) })}
            {dirty && ` · ${t('files.text.unsaved')}`}
          </p>
        </>
      )}
      {conflict && (
        <div className="notice notice-warning files-conflict" role="alert">
          <p>
            <strong>{t('files.text.conflictTitle')}</strong> {t('files.text.conflictBody')}
          </p>
          <div className="actions">
            <Button onClick={() => void reload()}>{t('files.text.reloadTheirs')}</Button>
            <Button variant="danger" busy={saving} onClick={() => void save(conflict.etag)}>
              {t('files.text.overwriteMine')}
            </Button>
          </div>
        </div>
      )}
      {saveError !== null && (
        <p className="error-note" role="alert">
          {actionErrorText(t, saveError)}
        </p>
      )}
      {saved && !dirty && <Notice tone="success">{t('files.text.saved')}</Notice>}
      {confirmDiscard && (
        <div className="notice notice-warning" role="alert">
          <p>{t('files.text.discardQuestion')}</p>
          <div className="actions">
            <Button onClick={() => setConfirmDiscard(false)}>{t('files.text.keepEditing')}</Button>
            <Button variant="danger" onClick={onClose}>
              {t('files.text.discard')}
            </Button>
          </div>
        </div>
      )}
      <div className="actions">
        <Button onClick={() => (requestClose() ? onClose() : undefined)}>{t('common.close')}</Button>
        {load.status === 'ready' && (
          <Button variant="primary" busy={saving && !conflict} disabled={!dirty || conflict !== null} onClick={() => void save(etag)}>
            {t('common.save')}
          </Button>
        )}
      </div>
    </Modal>
  );
}
