import type { filesEn } from './files.en';

export const filesZh: Record<keyof typeof filesEn, string> = {
  'files.title': '文件',
};
