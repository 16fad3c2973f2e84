import { randomBytes } from 'node:crypto';
import { OidcProtocolError, type OidcClient, type OidcIdentity, type OidcTransaction } from '../../src/oidc/oidcClient';

export const FAKE_ISSUER = 'https://idp.test/realms/main';

const random = (): string => randomBytes(16).toString('base64url');

/**
 * A stand-in for the OIDC protocol at the port we own, for tests of the sign-in rules. It keeps
 * the protocol's promises that those rules rely on: a code is bound to the state it was issued
 * for and works once. The real protocol (openid-client against oidc-provider) is tested in
 * test/process/oidc.test.ts and test/browser/oidc.test.ts.
 */
export class FakeOidcClient implements OidcClient {
  private readonly codes = new Map<string, { state: string; claims: Record<string, unknown> }>();
  reachable = true;
  endSession: string | null = `${FAKE_ISSUER}/logout`;

  async begin(): Promise<{ url: string; transaction: OidcTransaction }> {
    if (!this.reachable) throw new OidcProtocolError('unreachable', 'connect ECONNREFUSED');
    const transaction = { state: random(), nonce: random(), codeVerifier: random() };
    const url = new URL(`${FAKE_ISSUER}/auth`);
    url.searchParams.set('state', transaction.state);
    url.searchParams.set('nonce', transaction.nonce);
    return { url: url.href, transaction };
  }

  /** What the provider does once the person signed in at its page: the callback's query string. */
  authorize(authorizationUrl: string, claims: { sub: string } & Record<string, unknown>): string {
    const state = new URL(authorizationUrl).searchParams.get('state') ?? '';
    const code = random();
    this.codes.set(code, { state, claims });
    return `?code=${code}&state=${encodeURIComponent(state)}&iss=${encodeURIComponent(FAKE_ISSUER)}`;
  }

  async finish(callbackUrl: URL, transaction: OidcTransaction): Promise<OidcIdentity> {
    const params = callbackUrl.searchParams;
    if (params.get('error')) throw new OidcProtocolError('provider_error', `The provider refused the sign-in: ${params.get('error')}`);
    if (params.get('state') !== transaction.state) throw new OidcProtocolError('invalid_response', 'unexpected "state" response parameter value');
    const code = params.get('code') ?? '';
    const issued = this.codes.get(code);
    this.codes.delete(code);
    if (!issued || issued.state !== transaction.state) throw new OidcProtocolError('invalid_response', 'invalid_grant (grant request is invalid)');
    return { issuer: FAKE_ISSUER, subject: String(issued.claims.sub), claims: { iss: FAKE_ISSUER, ...issued.claims } };
  }

  async endSessionUrl(): Promise<string | null> {
    return this.endSession;
  }
}
