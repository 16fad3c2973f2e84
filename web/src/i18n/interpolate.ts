const PLURALS = new Map<string, Intl.PluralRules>();

function pluralRules(locale: string): Intl.PluralRules {
  let rules = PLURALS.get(locale);
  if (!rules) PLURALS.set(locale, (rules = new Intl.PluralRules(locale)));
  return rules;
}

/**
 * Fills `{name}` placeholders. A template with forms separated by `||` ("one||other", as English
 * needs) picks the form for `params.count` by the language's plural rules; a count already
 * formatted for display ("1,234") is read back as a number.
 */
export function interpolate(template: string, params?: Record<string, string | number>, locale = 'en'): string {
  let chosen = template;
  if (template.includes('||')) {
    const [one, other] = template.split('||') as [string, string];
    const raw = params?.count;
    const count = typeof raw === 'number' ? raw : Number(String(raw ?? '').replace(/[^\d.-]/g, ''));
    chosen = raw !== undefined && Number.isFinite(count) && pluralRules(locale).select(count) === 'one' ? one : other;
  }
  if (!params) return chosen;
  return chosen.replace(/\{(\w+)\}/g, (whole, name: string) => (name in params ? String(params[name]) : whole));
}
