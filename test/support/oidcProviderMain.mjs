// A real OpenID provider for the tests: oidc-provider (a certified implementation) with its own
// development login pages, one confidential client with PKCE required, and the users given in
// OIDC_TEST_USERS. It listens on 127.0.0.1 (OIDC_TEST_PORT, or a free port) and prints one JSON
// line {"issuer": ...} when ready. Run by test/support/oidcProvider.ts; ESM only, like the package.
//
// POST /__test/id-token {"mode": ...} makes the next ID tokens bad in one way, re-signed with the
// provider's own key so only the claim is wrong: "wrong-audience", "wrong-issuer", "expired", or
// "normal". Nothing else in the provider is changed.
import http from 'node:http';
import Provider from 'oidc-provider';
import { decodeJwt, exportJWK, generateKeyPair, SignJWT } from 'jose';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
};

/** { "<login>": { "email": ..., "email_verified": ..., "groups": [...], ... } } */
const users = JSON.parse(env('OIDC_TEST_USERS'));
const client = JSON.parse(env('OIDC_TEST_CLIENT'));
const port = Number(process.env.OIDC_TEST_PORT ?? '0');

const { privateKey } = await generateKeyPair('RS256', { extractable: true });
const jwk = { ...(await exportJWK(privateKey)), kid: 'test-key', alg: 'RS256', use: 'sig' };

const server = http.createServer();
await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: client.id,
      // Without a secret: a public client, which PKCE alone binds to its codes.
      ...(client.secret ? { client_secret: client.secret, token_endpoint_auth_method: 'client_secret_post' } : { token_endpoint_auth_method: 'none' }),
      redirect_uris: [client.redirectUri],
      post_logout_redirect_uris: [client.postLogoutRedirectUri],
      grant_types: ['authorization_code'],
      response_types: ['code'],
    },
  ],
  jwks: { keys: [jwk] },
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups'],
  },
  cookies: { keys: ['oidc-test-cookie-key'] },
  async findAccount(_ctx, id) {
    const claims = users[id];
    if (!claims) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, ...claims }) };
  },
  // A first-party client: what it asks for is granted without a consent page.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId ?? ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid email profile groups');
    await grant.save();
    return grant;
  },
});

let mode = 'normal';

provider.use(async (ctx, next) => {
  await next();
  if (ctx.path !== '/token' || mode === 'normal' || typeof ctx.body?.id_token !== 'string') return;
  const claims = decodeJwt(ctx.body.id_token);
  const now = Math.floor(Date.now() / 1000);
  if (mode === 'wrong-audience') claims.aud = 'another-client';
  if (mode === 'wrong-issuer') claims.iss = 'http://127.0.0.1:1/not-this-provider';
  // Well past any clock tolerance a client allows.
  if (mode === 'expired') Object.assign(claims, { iat: now - 7200, exp: now - 3600 });
  ctx.body.id_token = await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: jwk.kid, typ: 'JWT' }).sign(privateKey);
});

const callback = provider.callback();
server.on('request', (req, res) => {
  if (req.method === 'POST' && req.url === '/__test/id-token') {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      mode = JSON.parse(body).mode;
      res.writeHead(204).end();
    });
    return;
  }
  callback(req, res);
});

process.stdout.write(`${JSON.stringify({ issuer })}\n`);
process.on('SIGTERM', () => server.close(() => process.exit(0)));
