import type * as OpenId from 'openid-client';
import type { Logger } from '../lib/logger';
import { OidcProtocolError, type OidcClient, type OidcIdentity, type OidcTransaction } from './oidcClient';
import type { OidcSettings } from './oidcSettings';

type Library = typeof OpenId;

const REQUEST_TIMEOUT_SECONDS = 10;

/**
 * The OidcClient port through openid-client (a certified relying party). The library is ESM
 * only: it is loaded here, on first use, and only when single sign-on is configured, so nothing
 * else (the test runner included) ever imports it. Discovery runs on first use too, and again
 * after a failure: a provider that is down at start-up does not keep the platform from starting.
 */
export function openidClient(settings: OidcSettings, logger: Logger): OidcClient {
  let library: Promise<Library> | null = null;
  let configuration: Promise<OpenId.Configuration> | null = null;

  const load = (): Promise<Library> => (library ??= import('openid-client'));

  const configure = (): Promise<OpenId.Configuration> => {
    configuration ??= (async () => {
      const lib = await load();
      const issuer = new URL(settings.issuer);
      // Plain http only where the operator configured it so (a provider on a private network, tests).
      const execute = issuer.protocol === 'http:' ? [lib.allowInsecureRequests] : [];
      const auth = settings.clientSecret === null ? lib.None() : lib.ClientSecretPost(settings.clientSecret);
      const config = await lib.discovery(issuer, settings.clientId, undefined, auth, { execute, timeout: REQUEST_TIMEOUT_SECONDS });
      logger.info({ issuer: settings.issuer }, 'OpenID provider discovered');
      return config;
    })();
    configuration.catch((err: unknown) => {
      logger.warn({ issuer: settings.issuer, err: messageOf(err) }, 'OpenID provider discovery failed; retried at the next sign-in');
      configuration = null;
    });
    return configuration;
  };

  const ready = async (): Promise<{ lib: Library; config: OpenId.Configuration }> => {
    try {
      return { lib: await load(), config: await configure() };
    } catch (err) {
      throw new OidcProtocolError('unreachable', `The OpenID provider could not be reached: ${messageOf(err)}`);
    }
  };

  return {
    async begin() {
      const { lib, config } = await ready();
      const transaction: OidcTransaction = { state: lib.randomState(), nonce: lib.randomNonce(), codeVerifier: lib.randomPKCECodeVerifier() };
      const url = lib.buildAuthorizationUrl(config, {
        redirect_uri: settings.redirectUri,
        scope: settings.scopes.join(' '),
        response_type: 'code',
        code_challenge: await lib.calculatePKCECodeChallenge(transaction.codeVerifier),
        code_challenge_method: 'S256',
        state: transaction.state,
        nonce: transaction.nonce,
      });
      return { url: url.href, transaction };
    },

    async finish(callbackUrl: URL, transaction: OidcTransaction): Promise<OidcIdentity> {
      const { lib, config } = await ready();
      try {
        const tokens = await lib.authorizationCodeGrant(config, callbackUrl, {
          pkceCodeVerifier: transaction.codeVerifier,
          expectedState: transaction.state,
          expectedNonce: transaction.nonce,
          idTokenExpected: true,
        });
        const idToken = tokens.claims();
        if (!idToken) throw new OidcProtocolError('invalid_response', 'The provider returned no ID token.');
        let claims: Record<string, unknown> = { ...idToken };
        if (config.serverMetadata().userinfo_endpoint) {
          // Some providers put groups and email only in userinfo; the ID token's subject must match it.
          const userinfo = await lib.fetchUserInfo(config, tokens.access_token, idToken.sub);
          claims = { ...userinfo, ...idToken };
        }
        return { issuer: idToken.iss, subject: idToken.sub, claims };
      } catch (err) {
        if (err instanceof OidcProtocolError) throw err;
        if (err instanceof lib.AuthorizationResponseError) {
          const code = errorCode(err.error);
          throw new OidcProtocolError('provider_error', `The provider refused the sign-in: ${code}${err.error_description ? ` (${err.error_description.slice(0, 200)})` : ''}`, `authorization:${code}`);
        }
        if (err instanceof lib.ResponseBodyError) {
          const code = errorCode(err.error);
          throw new OidcProtocolError('invalid_response', `The provider's token endpoint refused the code: ${code}${err.error_description ? ` (${err.error_description.slice(0, 200)})` : ''}`, `token:${code}`);
        }
        // The library's checks (state, nonce, PKCE, ID token signature, iss, aud, exp) throw with a reason.
        const check = messageOf(err);
        throw new OidcProtocolError('invalid_response', `The provider's answer did not pass the checks: ${check}`, check);
      }
    },

    async endSessionUrl() {
      const { lib, config } = await ready();
      if (!config.serverMetadata().end_session_endpoint) return null;
      return lib.buildEndSessionUrl(config, { client_id: settings.clientId, post_logout_redirect_uri: settings.postLogoutRedirectUri }).href;
    },
  };
}

/** An OAuth error code as the spec shapes them (invalid_grant…); anything else is not echoed. */
function errorCode(value: string): string {
  return /^[a-z_]{1,50}$/.test(value) ? value : 'unrecognised_error';
}

/** The library's code and message, and its cause's message, which names the check (`unexpected JWT "aud" (audience) claim value`). */
function messageOf(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const code = typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : null;
  const cause = err instanceof Error && err.cause instanceof Error && err.cause.message !== message ? ` (${err.cause.message})` : '';
  return `${code ? `${code}: ` : ''}${message}${cause}`.slice(0, 300);
}
