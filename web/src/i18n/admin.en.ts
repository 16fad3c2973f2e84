/** Strings of the admin pages (English); zh in admin.zh.ts must have the same keys. */
export const adminEn = {
  'admin.title': 'Administration',
} as const;
