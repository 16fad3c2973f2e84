/**
 * The credential of `Authorization: Bearer <credential>` (RFC 6750 §2.1), or null when the header
 * is missing, names another scheme or is not one word after it. The scheme is case-insensitive;
 * spaces or tabs separate it and may follow the credential. One reading for every endpoint that
 * takes a bearer (the API's tokens, the metrics token, the model gateway's keys); what a credential
 * may look like beyond that (its length) is each caller's.
 */
export function bearerCredential(header: string | undefined): string | null {
  return /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header ?? '')?.[1] ?? null;
}
