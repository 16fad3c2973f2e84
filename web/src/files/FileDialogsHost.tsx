import type { FileEntry } from '../api/types';
import { MoveDialog, NewFolderDialog, RenameDialog } from './FileDialogs';
import { ImagePreview } from './ImagePreview';
import { TextEditorDialog } from './TextEditorDialog';

export type FileDialog = { kind: 'mkdir' } | { kind: 'rename' | 'move' | 'text' | 'image'; entry: FileEntry };

/** The one dialog open on the Files page, if any (each is mounted only while open). */
export function FileDialogsHost({ dialog, dir, onClose, onChanged }: { dialog: FileDialog | null; dir: string; onClose: () => void; onChanged: () => void }) {
  if (!dialog) return null;
  switch (dialog.kind) {
    case 'mkdir':
      return <NewFolderDialog dir={dir} onClose={onClose} onCreated={onChanged} />;
    case 'rename':
      return <RenameDialog key={dialog.entry.path} entry={dialog.entry} onClose={onClose} onDone={onChanged} />;
    case 'move':
      return <MoveDialog key={dialog.entry.path} entry={dialog.entry} onClose={onClose} onDone={onChanged} />;
    case 'text':
      return <TextEditorDialog key={dialog.entry.path} entry={dialog.entry} onClose={onClose} onSaved={onChanged} />;
    case 'image':
      return <ImagePreview key={dialog.entry.path} entry={dialog.entry} onClose={onClose} />;
  }
}
