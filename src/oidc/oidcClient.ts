/**
 * The OpenID Connect protocol, behind a port this project owns: the adapter (openidClientAdapter.ts)
 * speaks it through openid-client; tests of the sign-in rules use a fake. Everything the protocol
 * must check (state, nonce, PKCE, the ID token's signature, issuer, audience and expiry) is the
 * adapter's job: what comes out of `finish` is verified.
 */

/** What one browser's sign-in must carry from the start to the callback. */
export interface OidcTransaction {
  state: string;
  nonce: string;
  codeVerifier: string;
}

/** The verified claims of a completed sign-in: the ID token's, with the userinfo endpoint's added where it has one. */
export interface OidcIdentity {
  issuer: string;
  subject: string;
  claims: Readonly<Record<string, unknown>>;
}

export interface OidcClient {
  /** A fresh transaction and the provider's authorization URL for it. */
  begin(): Promise<{ url: string; transaction: OidcTransaction }>;
  /**
   * Completes the authorization code grant for the callback URL the browser came back with.
   * Throws OidcProtocolError for anything the provider or the checks refused.
   */
  finish(callbackUrl: URL, transaction: OidcTransaction): Promise<OidcIdentity>;
  /** The provider's end-session URL (RP-initiated logout), or null when it has none. */
  endSessionUrl(): Promise<string | null>;
}

/** Why a callback did not yield an identity; `reason` is short and safe to audit (no tokens). */
export class OidcProtocolError extends Error {
  constructor(
    readonly reason: 'provider_error' | 'invalid_response' | 'unreachable',
    message: string,
    /**
     * Which check or error this was, from a short list (the library's checks, the provider's
     * error codes): repeats of one are counted together in the audit log. Never free text a
     * caller chose (an error_description).
     */
    readonly check: string = reason,
  ) {
    super(message);
    this.name = 'OidcProtocolError';
  }
}
