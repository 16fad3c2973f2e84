import { useCallback, useEffect, useMemo, useRef, useState, useSyncExternalStore, type DragEvent } from 'react';
import { api, API, ApiError, query } from '../api/client';
import type { FileEntry, FileListing, FilesUsage } from '../api/types';
import { Link, useLocation } from '../app/router';
import { FileDialogsHost, type FileDialog } from '../files/FileDialogsHost';
import { FileTable, sortEntries, type EntryActions, type Sort, type SortKey } from '../files/FileTable';
import { downloadUrl, folderUrl, isImage, nameOf, segmentsOf } from '../files/filesApi';
import { uploadQueue } from '../files/sharedQueue';
import { TransferPanel } from '../files/TransferPanel';
import { useI18n } from '../i18n/i18n';
import { dragHasFiles, readDrop, readInput, type Picked } from '../lib/fileDrop';
import { formatBytes, formatNumber, share } from '../lib/format';
import { joinPath, normalizePath } from '../lib/uploadQueue';
import { useResource } from '../ui/useResource';
import { Button, Card, ConfirmDialog, EmptyState, ErrorNote, Notice, ProgressBar } from '../ui/ui';

/** The folder a drag is over: a folder's row, or null for the folder shown. */
function dropDirAt(target: EventTarget | null): string | null {
  const row = target instanceof Element ? target.closest<HTMLElement>('[data-drop-dir]') : null;
  return row?.dataset.dropDir ?? null;
}

export function FilesPage() {
  const { t, locale } = useI18n();
  const { search } = useLocation();
  const path = normalizePath(search.get('path') ?? '');
  const listing = useResource((signal) => api.get<FileListing>(`/files${query({ path })}`, { signal }), path);
  // After a change the server's cached figures (kept up to 10 s) are not enough: ask for a fresh count.
  const freshUsage = useRef(false);
  const usage = useResource((signal) => {
    const fresh = freshUsage.current;
    freshUsage.current = false;
    return api.get<FilesUsage>(`/files/usage${fresh ? '?fresh=1' : ''}`, { signal });
  }, 'files-usage');
  const queue = uploadQueue();
  const transfers = useSyncExternalStore(queue.subscribe, queue.getSnapshot);
  const [sort, setSort] = useState<Sort>({ key: 'name', direction: 'asc' });
  const [dialog, setDialog] = useState<FileDialog | null>(null);
  const [deleting, setDeleting] = useState<FileEntry | null>(null);
  const [dragging, setDragging] = useState(false);
  const [dropTarget, setDropTarget] = useState<string | null>(null);
  const [uploadError, setUploadError] = useState<unknown>(null);
  const [uploadNotice, setUploadNotice] = useState<string | null>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  const folderInput = useRef<HTMLInputElement>(null);
  const dragDepth = useRef(0);

  // Latest values for listeners registered once.
  const latest = useRef({ path, reloadListing: listing.reload, reloadUsage: usage.reload });
  latest.current = { path, reloadListing: listing.reload, reloadUsage: usage.reload };

  const refresh = useCallback(() => {
    void latest.current.reloadListing();
    freshUsage.current = true;
    void latest.current.reloadUsage();
  }, []);

  // A finished upload shows in the listing and the quota; several finishing together reload once.
  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | null = null;
    const off = queue.onFinished(() => {
      if (timer === null)
        timer = setTimeout(() => {
          timer = null;
          refresh();
        }, 250);
    });
    return () => {
      off();
      if (timer !== null) clearTimeout(timer);
    };
  }, [queue, refresh]);

  const upload = useCallback(
    async (pending: Promise<Picked> | Picked, dir: string) => {
      setUploadError(null);
      setUploadNotice(null);
      try {
        const picked = await pending;
        if (picked.files.length > 0) {
          queue.add(
            picked.files.map((f) => ({ file: f.file, relativePath: f.relativePath, size: f.file.size })),
            dir,
          );
        }
        if (picked.unreadable > 0) setUploadNotice(t('files.drop.unreadable', { count: picked.unreadable }));
        else if (picked.files.length === 0 && picked.emptyDirs.length === 0) setUploadNotice(t('files.drop.nothing'));
        if (picked.emptyDirs.length > 0) {
          // Empty folders carry no file to upload: they are created as folders.
          for (const empty of picked.emptyDirs) {
            try {
              await api.post('/files/mkdir', { path: joinPath(dir, empty), parents: true });
            } catch (err) {
              if (!(err instanceof ApiError && err.code === 'ALREADY_EXISTS')) throw err;
            }
          }
          refresh();
        }
      } catch (err) {
        setUploadError(err);
      }
    },
    [queue, refresh, t],
  );

  // The whole window takes drops: a drop beside the page's area goes to the folder shown instead
  // of making the browser open the file.
  useEffect(() => {
    const enter = (event: globalThis.DragEvent) => {
      if (!dragHasFiles(event.dataTransfer)) return;
      dragDepth.current++;
      setDragging(true);
    };
    const leave = (event: globalThis.DragEvent) => {
      if (!dragHasFiles(event.dataTransfer)) return;
      dragDepth.current = Math.max(0, dragDepth.current - 1);
      if (dragDepth.current === 0) {
        setDragging(false);
        setDropTarget(null);
      }
    };
    const over = (event: globalThis.DragEvent) => {
      if (!dragHasFiles(event.dataTransfer)) return;
      event.preventDefault();
      if (event.dataTransfer) event.dataTransfer.dropEffect = 'copy';
    };
    const drop = (event: globalThis.DragEvent) => {
      dragDepth.current = 0;
      setDragging(false);
      setDropTarget(null);
      if (event.defaultPrevented || !event.dataTransfer || !dragHasFiles(event.dataTransfer)) return;
      event.preventDefault();
      void upload(readDrop(event.dataTransfer), latest.current.path);
    };
    window.addEventListener('dragenter', enter);
    window.addEventListener('dragleave', leave);
    window.addEventListener('dragover', over);
    window.addEventListener('drop', drop);
    window.addEventListener('dragend', drop);
    return () => {
      window.removeEventListener('dragend', drop);
      window.removeEventListener('dragenter', enter);
      window.removeEventListener('dragleave', leave);
      window.removeEventListener('dragover', over);
      window.removeEventListener('drop', drop);
    };
  }, [upload]);

  const onDragOver = (event: DragEvent<HTMLDivElement>) => {
    if (!dragHasFiles(event.dataTransfer)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = 'copy';
    const target = dropDirAt(event.target);
    if (target !== dropTarget) setDropTarget(target);
  };
  const onDrop = (event: DragEvent<HTMLDivElement>) => {
    if (!dragHasFiles(event.dataTransfer)) return;
    // Marks the drop as handled: the window's listener leaves it alone.
    event.preventDefault();
    const dir = dropDirAt(event.target) ?? path;
    void upload(readDrop(event.dataTransfer), dir);
  };

  const actions = useMemo<EntryActions>(
    () => ({
      onOpen: (entry) => setDialog({ kind: isImage(entry) ? 'image' : 'text', entry }),
      onRename: (entry) => setDialog({ kind: 'rename', entry }),
      onMove: (entry) => setDialog({ kind: 'move', entry }),
      onDelete: (entry) => setDeleting(entry),
    }),
    [],
  );

  const onSort = (key: SortKey) => setSort((old) => ({ key, direction: old.key === key && old.direction === 'asc' ? 'desc' : 'asc' }));
  const current = listing.data && listing.data.path === path ? listing.data : null;
  const entries = useMemo(() => (current ? sortEntries(current.entries, sort, locale) : []), [current, sort, locale]);
  const crumbs = segmentsOf(path);
  const folderName = path === '' ? t('files.root') : nameOf(path);
  const u = usage.data;

  const remove = async (entry: FileEntry) => {
    const folder = entry.type === 'dir';
    await api.delete(`/files${query({ path: entry.path, recursive: folder ? 1 : undefined })}`);
    refresh();
  };

  return (
    <div id="files" className="stack files-page">
      <div
        id="dropzone"
        className={`stack files-dropzone${dragging ? ' files-dragging' : ''}`}
        onDragOver={onDragOver}
        onDrop={onDrop}
        aria-describedby="files-drop-help"
      >
        <div className="files-top">
          <h1>{t('files.title')}</h1>
          <div className="files-quota" aria-live="polite">
            <ErrorNote error={usage.error} />
            {u && (
              <>
                <span>
                  {t('files.quota.used', { used: formatBytes(u.bytes, locale), quota: formatBytes(u.quotaBytes, locale) })}
                  <span className="muted"> · {t('files.quota.files', { count: formatNumber(u.files, locale) })}</span>
                </span>
                <div className={share(u.bytes, u.quotaBytes) >= 0.9 ? 'files-quota-full' : undefined}>
                  <ProgressBar value={share(u.bytes, u.quotaBytes)} label={t('files.quota.label')} />
                </div>
              </>
            )}
          </div>
        </div>

        <Card>
          <div className="files-toolbar">
            <nav aria-label={t('files.breadcrumb')} className="files-crumbs">
              <ol>
                <li>
                  <Link to={folderUrl('')} aria-current={path === '' ? 'page' : undefined}>
                    {t('files.root')}
                  </Link>
                </li>
                {crumbs.map((segment, i) => {
                  const to = crumbs.slice(0, i + 1).join('/');
                  return (
                    <li key={to}>
                      <Link to={folderUrl(to)} aria-current={to === path ? 'page' : undefined}>
                        {segment}
                      </Link>
                    </li>
                  );
                })}
              </ol>
            </nav>
            <div className="files-toolbar-actions">
              <Button variant="primary" onClick={() => fileInput.current?.click()}>
                {t('files.upload.files')}
              </Button>
              <Button onClick={() => folderInput.current?.click()}>{t('files.upload.folder')}</Button>
              <Button onClick={() => setDialog({ kind: 'mkdir' })}>{t('files.mkdir.button')}</Button>
              <a className="button button-ghost" href={path === '' ? `${API}/files/export` : downloadUrl(path)} download>
                {t('files.downloadFolder')}
              </a>
              <Button variant="ghost" busy={listing.loading && listing.data !== null} onClick={refresh}>
                {t('files.refresh')}
              </Button>
            </div>
          </div>
          <input
            ref={fileInput}
            type="file"
            multiple
            hidden
            aria-label={t('files.upload.files')}
            onChange={(e) => {
              void upload(readInput(e.currentTarget.files), path);
              e.currentTarget.value = '';
            }}
          />
          <input
            ref={(element) => {
              folderInput.current = element;
              if (element) element.webkitdirectory = true;
            }}
            type="file"
            multiple
            hidden
            aria-label={t('files.upload.folder')}
            onChange={(e) => {
              void upload(readInput(e.currentTarget.files), path);
              e.currentTarget.value = '';
            }}
          />
          <p id="files-drop-help" className="muted files-drop-help">
            {t('files.drop.help')}
          </p>
          <ErrorNote error={uploadError} />
          {uploadNotice && <Notice tone="warning">{uploadNotice}</Notice>}

          {listing.error !== null && (
            <div className="files-listing-error">
              <ErrorNote error={listing.error} />
              <div className="actions">
                <Button onClick={() => void listing.reload()}>{t('common.retry')}</Button>
                {path !== '' && <Link to={folderUrl('')}>{t('files.backToRoot')}</Link>}
              </div>
            </div>
          )}
          {!current && listing.loading && listing.error === null && (
            <p role="status" className="muted">
              {t('files.loading')}
            </p>
          )}
          {current && entries.length === 0 && (
            <EmptyState title={t('files.empty.title', { folder: folderName })}>{t('files.empty.body')}</EmptyState>
          )}
          {current && entries.length > 0 && <FileTable entries={entries} sort={sort} onSort={onSort} actions={actions} dropTarget={dropTarget} t={t} locale={locale} />}
        </Card>

        {transfers.rows.length > 0 && <TransferPanel snapshot={transfers} controls={queue} t={t} locale={locale} />}

        {dragging && (
          <div className="files-drop-overlay" aria-hidden="true">
            {dropTarget !== null ? t('files.drop.intoFolder', { name: nameOf(dropTarget) }) : t('files.drop.here', { folder: folderName })}
          </div>
        )}
      </div>

      <FileDialogsHost dialog={dialog} dir={path} onClose={() => setDialog(null)} onChanged={refresh} />
      {deleting && (
        <ConfirmDialog
          open
          title={t('files.delete.title', { name: deleting.name })}
          confirmLabel={t('files.delete.confirm')}
          onConfirm={() => remove(deleting)}
          onClose={() => setDeleting(null)}
        >
          <p>{deleting.type === 'dir' ? t('files.delete.folderBody', { name: deleting.name }) : t('files.delete.fileBody', { name: deleting.name })}</p>
          <p className="muted">{deleting.path}</p>
        </ConfirmDialog>
      )}
    </div>
  );
}
