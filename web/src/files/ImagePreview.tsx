import { useState } from 'react';
import type { FileEntry } from '../api/types';
import { useI18n } from '../i18n/i18n';
import { formatBytes, formatDateTime } from '../lib/format';
import { Button } from '../ui/ui';
import { downloadUrl } from './filesApi';
import { Modal } from './Modal';

/** An image of the workspace, shown inline (the server allows inline only for image types). */
export function ImagePreview({ entry, onClose }: { entry: FileEntry; onClose: () => void }) {
  const { t, locale } = useI18n();
  const [failed, setFailed] = useState(false);
  return (
    <Modal title={entry.name} onClose={onClose} wide id="image-preview">
      <p className="muted files-dialog-path">
        {entry.path} · {formatBytes(entry.size, locale)} · {formatDateTime(entry.modifiedAt, locale)}
      </p>
      {failed ? (
        <p className="error-note" role="alert">
          {t('files.image.failed')}
        </p>
      ) : (
        <div className="files-image">
          <img src={downloadUrl(entry.path, true)} alt={entry.name} onError={() => setFailed(true)} />
        </div>
      )}
      <div className="actions">
        <a className="button button-secondary" href={downloadUrl(entry.path)} download>
          {t('files.action.download')}
        </a>
        <Button variant="primary" onClick={onClose}>
          {t('common.close')}
        </Button>
      </div>
    </Modal>
  );
}
