/** Strings of the Files page (English); zh in files.zh.ts must have the same keys. */
export const filesEn = {
  'files.title': 'Files',
} as const;
