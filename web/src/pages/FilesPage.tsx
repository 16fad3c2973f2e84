import { useI18n } from '../i18n/i18n';

export function FilesPage() {
  const { t } = useI18n();
  return <h1>{t('files.title')}</h1>;
}
