import { useState, type FormEvent } from 'react';
import { api, ApiError, query } from '../api/client';
import type { FileEntry, FileListing } from '../api/types';
import { useI18n } from '../i18n/i18n';
import { joinPath } from '../lib/uploadQueue';
import { useResource } from '../ui/useResource';
import { Button, ErrorNote, Field } from '../ui/ui';
import { FileIcon } from './FileIcon';
import { isFolder, nameOf, parentOf, segmentsOf } from './filesApi';
import { Modal } from './Modal';

/** A single name: no folders in it, not `.` or `..`. */
function nameProblem(name: string): 'empty' | 'slash' | 'dots' | null {
  if (name.trim() === '') return 'empty';
  if (name.includes('/')) return 'slash';
  if (name === '.' || name === '..') return 'dots';
  return null;
}

function useNameError() {
  const { t } = useI18n();
  return (problem: ReturnType<typeof nameProblem>) =>
    problem === 'empty' ? t('files.name.empty') : problem === 'slash' ? t('files.name.slash') : problem === 'dots' ? t('files.name.dots') : null;
}

export function NewFolderDialog({ dir, onClose, onCreated }: { dir: string; onClose: () => void; onCreated: (path: string) => void }) {
  const { t } = useI18n();
  const nameError = useNameError();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const submit = async (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const name = String(new FormData(event.currentTarget).get('name') ?? '').trim();
    const problem = nameError(nameProblem(name));
    if (problem) return setError(new Error(problem));
    setBusy(true);
    setError(null);
    try {
      const path = joinPath(dir, name);
      await api.post('/files/mkdir', { path, parents: true });
      onCreated(path);
      onClose();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Modal title={t('files.mkdir.title')} onClose={onClose} id="new-folder">
      <form className="form" onSubmit={(e) => void submit(e)}>
        <Field label={t('files.mkdir.name')} name="name" autoFocus autoComplete="off" required hint={t('files.mkdir.where', { folder: dir === '' ? t('files.root') : dir })} />
        <ErrorNote error={error} />
        <div className="actions">
          <Button onClick={onClose}>{t('common.cancel')}</Button>
          <Button type="submit" variant="primary" busy={busy}>
            {t('files.mkdir.submit')}
          </Button>
        </div>
      </form>
    </Modal>
  );
}

/** What stands at `path` now, if anything: a folder there can never be replaced by a move. */
async function typeAt(path: string): Promise<FileEntry['type'] | null> {
  const listing = await api.get<FileListing>(`/files${query({ path: parentOf(path) })}`);
  return listing.entries.find((e) => e.name === nameOf(path))?.type ?? null;
}

/**
 * Runs a move; a name that is taken by a file turns into a question whether to replace it, one
 * taken by a folder into a refusal in words (the server would refuse the replacement anyway).
 */
function useMove(entry: FileEntry, onMoved: (to: string) => void) {
  const { t } = useI18n();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [taken, setTaken] = useState<string | null>(null);
  const run = async (to: string, overwrite = false) => {
    setBusy(true);
    setError(null);
    try {
      await api.post('/files/move', { from: entry.path, to, overwrite });
      setTaken(null);
      onMoved(to);
    } catch (err) {
      if (!overwrite && err instanceof ApiError && err.status === 409 && err.code === 'ALREADY_EXISTS') {
        if ((await typeAt(to).catch(() => null)) === 'dir') setError(new Error(t('files.move.folderTaken', { path: to })));
        else setTaken(to);
      } else {
        setTaken(null);
        setError(err);
      }
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, setError, taken, setTaken, run };
}

function ReplaceQuestion({ path, busy, onReplace, onKeep }: { path: string; busy: boolean; onReplace: () => void; onKeep: () => void }) {
  const { t } = useI18n();
  return (
    <div className="notice notice-warning" role="alert">
      <p>{t('files.move.taken', { path })}</p>
      <div className="actions">
        <Button onClick={onKeep}>{t('files.move.keep')}</Button>
        <Button variant="danger" busy={busy} onClick={onReplace}>
          {t('files.move.replace')}
        </Button>
      </div>
    </div>
  );
}

export function RenameDialog({ entry, onClose, onDone }: { entry: FileEntry; onClose: () => void; onDone: () => void }) {
  const { t } = useI18n();
  const nameError = useNameError();
  const move = useMove(entry, () => {
    onDone();
    onClose();
  });
  const submit = (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const name = String(new FormData(event.currentTarget).get('name') ?? '').trim();
    const problem = nameError(nameProblem(name));
    if (problem) return move.setError(new Error(problem));
    if (name === entry.name) return onClose();
    void move.run(joinPath(parentOf(entry.path), name));
  };
  return (
    <Modal title={t('files.rename.title', { name: entry.name })} onClose={onClose} id="rename">
      <form className="form" onSubmit={submit}>
        <Field
          label={t('files.rename.name')}
          name="name"
          defaultValue={entry.name}
          autoFocus
          autoComplete="off"
          required
          onFocus={(e) => {
            // Select the name without its extension, as file managers do.
            const dot = isFolder(entry) ? -1 : entry.name.lastIndexOf('.');
            e.currentTarget.setSelectionRange(0, dot > 0 ? dot : entry.name.length);
          }}
          onChange={() => move.setTaken(null)}
        />
        <ErrorNote error={move.error} />
        {move.taken !== null && <ReplaceQuestion path={move.taken} busy={move.busy} onReplace={() => void move.run(move.taken ?? '', true)} onKeep={() => move.setTaken(null)} />}
        <div className="actions">
          <Button onClick={onClose}>{t('common.cancel')}</Button>
          <Button type="submit" variant="primary" busy={move.busy && move.taken === null}>
            {t('files.rename.submit')}
          </Button>
        </div>
      </form>
    </Modal>
  );
}

/** Moves an entry to a folder picked by browsing the workspace's folders. */
export function MoveDialog({ entry, onClose, onDone }: { entry: FileEntry; onClose: () => void; onDone: () => void }) {
  const { t } = useI18n();
  const from = parentOf(entry.path);
  const [dest, setDest] = useState(from);
  const folders = useResource((signal) => api.get<FileListing>(`/files${query({ path: dest })}`, { signal }), dest);
  const move = useMove(entry, () => {
    onDone();
    onClose();
  });
  const go = (path: string) => {
    setDest(path);
    move.setTaken(null);
    move.setError(null);
  };
  const subfolders = folders.data && folders.data.path === dest ? folders.data.entries.filter((e) => isFolder(e) && e.path !== entry.path) : [];
  const crumbs = segmentsOf(dest);
  const destName = dest === '' ? t('files.root') : nameOf(dest);
  return (
    <Modal title={t('files.move.title', { name: entry.name })} onClose={onClose} id="move">
      <p>{t('files.move.intro')}</p>
      <nav aria-label={t('files.move.destination')} className="files-crumbs files-crumbs-small">
        <ol>
          <li>
            <button type="button" className="files-link" onClick={() => go('')} aria-current={dest === '' ? 'location' : undefined}>
              {t('files.root')}
            </button>
          </li>
          {crumbs.map((segment, i) => {
            const path = crumbs.slice(0, i + 1).join('/');
            return (
              <li key={path}>
                <button type="button" className="files-link" onClick={() => go(path)} aria-current={path === dest ? 'location' : undefined}>
                  {segment}
                </button>
              </li>
            );
          })}
        </ol>
      </nav>
      <div className="files-picker" role="group" aria-label={t('files.move.subfolders', { name: destName })}>
        {folders.loading && !folders.data && <p role="status">{t('common.loading')}</p>}
        <ErrorNote error={folders.error} />
        {folders.data && !folders.loading && subfolders.length === 0 && <p className="muted">{t('files.move.noSubfolders')}</p>}
        <ul className="plain-list">
          {subfolders.map((folder) => (
            <li key={folder.path}>
              <button type="button" className="files-link" onClick={() => go(folder.path)}>
                <FileIcon kind="folder" />
                {folder.name}
              </button>
            </li>
          ))}
        </ul>
      </div>
      <p className="muted">{t('files.move.target', { path: joinPath(dest, entry.name) })}</p>
      <ErrorNote error={move.error} />
      {move.taken !== null && <ReplaceQuestion path={move.taken} busy={move.busy} onReplace={() => void move.run(move.taken ?? '', true)} onKeep={() => move.setTaken(null)} />}
      <div className="actions">
        <Button onClick={onClose}>{t('common.cancel')}</Button>
        <Button variant="primary" busy={move.busy && move.taken === null} disabled={dest === from} onClick={() => void move.run(joinPath(dest, entry.name))}>
          {t('files.move.submit', { name: destName })}
        </Button>
      </div>
    </Modal>
  );
}
