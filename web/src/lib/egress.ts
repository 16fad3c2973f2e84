/** The egress lists as the console edits them: one entry a line in a text box. Pure, like format.ts. */

/**
 * The entries typed in a text box: one a line (commas and spaces separate too), blank lines and
 * repeats dropped, in the order typed. The server checks each and lower-cases them.
 */
export function entriesOf(text: string | undefined): string[] {
  const seen = new Set<string>();
  for (const entry of (text ?? '').split(/[\s,]+/)) {
    const trimmed = entry.trim();
    if (trimmed !== '') seen.add(trimmed);
  }
  return [...seen];
}

/** A list as the text box shows it. */
export function entriesText(entries: readonly string[]): string {
  return entries.join('\n');
}
