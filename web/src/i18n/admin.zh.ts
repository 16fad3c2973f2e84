import type { adminEn } from './admin.en';

export const adminZh: Record<keyof typeof adminEn, string> = {
  'admin.title': '管理',
};
