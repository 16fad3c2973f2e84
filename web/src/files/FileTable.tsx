import { memo } from 'react';
import type { FileEntry } from '../api/types';
import { Link } from '../app/router';
import type { Translate } from '../i18n/i18n';
import type { MessageKey } from '../i18n/en';
import { formatBytes, formatDateTime } from '../lib/format';
import { Button } from '../ui/ui';
import { FileIcon } from './FileIcon';
import { downloadUrl, folderUrl, isFolder, isImage } from './filesApi';

export type SortKey = 'name' | 'size' | 'modified';
export interface Sort {
  key: SortKey;
  direction: 'asc' | 'desc';
}

/** Folders first, whatever the order; then by the chosen column (ties by name). */
export function sortEntries(entries: readonly FileEntry[], sort: Sort, locale: string): FileEntry[] {
  const collator = new Intl.Collator(locale, { numeric: true, sensitivity: 'base' });
  const sign = sort.direction === 'asc' ? 1 : -1;
  const byName = (a: FileEntry, b: FileEntry) => collator.compare(a.name, b.name) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  return [...entries].sort((a, b) => {
    const folderA = isFolder(a);
    const folderB = isFolder(b);
    if (folderA !== folderB) return folderA ? -1 : 1;
    let order = 0;
    if (sort.key === 'size' && !folderA) order = a.size - b.size;
    else if (sort.key === 'modified') order = Date.parse(a.modifiedAt) - Date.parse(b.modifiedAt);
    return sign * (order || byName(a, b));
  });
}

export interface EntryActions {
  onOpen(entry: FileEntry): void;
  onRename(entry: FileEntry): void;
  onMove(entry: FileEntry): void;
  onDelete(entry: FileEntry): void;
}

const COLUMNS: { key: SortKey; label: MessageKey; className?: string }[] = [
  { key: 'name', label: 'files.column.name' },
  { key: 'size', label: 'files.column.size', className: 'num' },
  { key: 'modified', label: 'files.column.modified', className: 'hide-narrow' },
];

/**
 * The entries of one folder. Folders are links (and drop targets: a drop on a folder's row
 * uploads into it); files open a preview; every action is a labelled button.
 */
export function FileTable({
  entries,
  sort,
  onSort,
  actions,
  dropTarget,
  t,
  locale,
}: {
  entries: readonly FileEntry[];
  sort: Sort;
  onSort: (key: SortKey) => void;
  actions: EntryActions;
  dropTarget: string | null;
  t: Translate;
  locale: string;
}) {
  return (
    <div className="table-wrap">
      <table className="files-table">
        <caption className="visually-hidden">{t('files.table.caption')}</caption>
        <thead>
          <tr>
            {COLUMNS.map((column) => {
              const active = sort.key === column.key;
              return (
                <th key={column.key} scope="col" className={column.className} aria-sort={active ? (sort.direction === 'asc' ? 'ascending' : 'descending') : 'none'}>
                  <button type="button" className="files-sort" onClick={() => onSort(column.key)}>
                    {t(column.label)}
                    <span className="files-sort-mark" aria-hidden="true">
                      {active ? (sort.direction === 'asc' ? '▲' : '▼') : '↕'}
                    </span>
                  </button>
                </th>
              );
            })}
            <th scope="col" className="files-actions-head">
              <span className="visually-hidden">{t('files.column.actions')}</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {entries.map((entry) => (
            <EntryRow key={entry.path} entry={entry} actions={actions} dropping={dropTarget === entry.path} t={t} locale={locale} />
          ))}
        </tbody>
      </table>
    </div>
  );
}

const EntryRow = memo(function EntryRow({ entry, actions, dropping, t, locale }: { entry: FileEntry; actions: EntryActions; dropping: boolean; t: Translate; locale: string }) {
  const folder = isFolder(entry);
  const other = entry.type === 'other' || (entry.type === 'symlink' && !entry.targetType);
  const icon = folder ? 'folder' : entry.type === 'symlink' ? 'link' : isImage(entry) ? 'image' : 'file';
  const name = entry.name;
  return (
    <tr data-testid="file-row" data-name={name} data-type={folder ? 'dir' : entry.type} data-drop-dir={folder ? entry.path : undefined} className={dropping ? 'files-drop-target' : undefined}>
      <td className="files-name">
        <FileIcon kind={icon} />
        {folder ? (
          <Link to={folderUrl(entry.path)} aria-label={t('files.openFolder', { name })}>
            {name}
          </Link>
        ) : other ? (
          <span>{name}</span>
        ) : (
          <button type="button" className="files-link" onClick={() => actions.onOpen(entry)} aria-label={t('files.openFile', { name })}>
            {name}
          </button>
        )}
        {entry.type === 'symlink' && entry.target && <span className="muted files-target"> → {entry.target}</span>}
        {folder && dropping && <span className="files-drop-hint">{t('files.drop.intoFolder', { name })}</span>}
      </td>
      <td className="num">{folder ? <span className="muted">—</span> : formatBytes(entry.size, locale)}</td>
      <td className="hide-narrow">{formatDateTime(entry.modifiedAt, locale)}</td>
      <td className="files-actions">
        <div className="files-actions-inner">
          {!other && (
            <a className="button button-ghost" href={downloadUrl(entry.path)} download aria-label={t(folder ? 'files.action.downloadFolderNamed' : 'files.action.downloadNamed', { name })}>
              {t('files.action.download')}
            </a>
          )}
          <Button variant="ghost" aria-label={t('files.action.renameNamed', { name })} onClick={() => actions.onRename(entry)}>
            {t('files.action.rename')}
          </Button>
          <Button variant="ghost" aria-label={t('files.action.moveNamed', { name })} onClick={() => actions.onMove(entry)}>
            {t('files.action.move')}
          </Button>
          <Button variant="ghost" className="button button-ghost files-danger" aria-label={t('files.action.deleteNamed', { name })} onClick={() => actions.onDelete(entry)}>
            {t('files.action.delete')}
          </Button>
        </div>
      </td>
    </tr>
  );
});
