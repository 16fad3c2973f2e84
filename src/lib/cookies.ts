/** Every value of cookie `name` in a Cookie header, at most `limit` (path mode may hold several; a planted copy makes two). */
export function cookieValues(header: string | undefined, name: string, limit = 8): string[] {
  if (!header || header.length > 16_384) return [];
  const values: string[] = [];
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === name) {
      const value = part.slice(eq + 1).trim();
      if (value) values.push(value);
    }
    if (values.length >= limit) break;
  }
  return values;
}
