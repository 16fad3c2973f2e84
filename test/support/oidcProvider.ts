/**
 * A real OpenID provider (oidc-provider, test/support/oidcProviderMain.mjs) in its own process, and a
 * cookie-keeping HTTP client that goes through its pages as a browser would: for tests of the
 * built server's single sign-on without a browser (test/process/oidc.test.ts).
 */
import path from 'node:path';
import { call, DOCKER_SOCKET, freePort, isListening, spawnMain, spawnNode, tempDir, WAIT_MS, type Child, type Server } from './processes';

export const PROVIDER_SCRIPT = path.join(__dirname, 'oidcProviderMain.mjs');
export const CLIENT_ID = 'clawloops';
export const CLIENT_SECRET = 'a-test-client-secret-of-some-length-0123456789';

export interface ProviderUser {
  email?: string;
  email_verified?: boolean;
  preferred_username?: string;
  name?: string;
  groups?: string[];
}

export interface TestProvider {
  child: Child;
  issuer: string;
  /** Makes the next ID tokens bad in one way (the provider re-signs them with its own key). */
  badIdTokens(mode: 'normal' | 'wrong-audience' | 'wrong-issuer' | 'expired'): Promise<void>;
}

/** Starts the provider for a ClawLoops at `publicUrl` and waits for its issuer line. */
export async function startProvider(publicUrl: string, users: Record<string, ProviderUser>, options: { publicClient?: boolean } = {}): Promise<TestProvider> {
  const child = spawnNode('oidc-provider', PROVIDER_SCRIPT, [], {
    OIDC_TEST_USERS: JSON.stringify(users),
    OIDC_TEST_CLIENT: JSON.stringify({
      id: CLIENT_ID,
      secret: options.publicClient ? null : CLIENT_SECRET,
      redirectUri: `${publicUrl}/api/v1/auth/oidc/callback`,
      postLogoutRedirectUri: `${publicUrl}/login`,
    }),
  });
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const line = child.stdout.split('\n').find((l) => l.startsWith('{"issuer"'));
    if (line) {
      const { issuer } = JSON.parse(line) as { issuer: string };
      return {
        child,
        issuer,
        async badIdTokens(mode) {
          const res = await fetch(`${issuer}/__test/id-token`, { method: 'POST', body: JSON.stringify({ mode }) });
          if (res.status !== 204) throw new Error(`the provider refused the mode ${mode}: ${res.status}`);
        },
      };
    }
    if (child.exit) throw new Error(`the provider exited before it was ready:\n${child.output}`);
    if (Date.now() > deadline) throw new Error(`the provider did not start within ${WAIT_MS} ms:\n${child.output}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Cookies per origin, sent back on the paths they were set for: just enough of a browser. */
export class CookieJar {
  private readonly cookies = new Map<string, Map<string, { value: string; path: string }>>();

  store(url: URL, setCookies: string[]): void {
    const jar = this.cookies.get(url.origin) ?? new Map<string, { value: string; path: string }>();
    this.cookies.set(url.origin, jar);
    for (const line of setCookies) {
      const [pair = '', ...attributes] = line.split(';').map((p) => p.trim());
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      const pathAttr = attributes.find((a) => a.toLowerCase().startsWith('path='))?.slice(5) ?? '/';
      const expired = attributes.some((a) => /^max-age=0$/i.test(a) || (/^expires=/i.test(a) && Date.parse(a.slice(8)) < Date.now()));
      if (expired || value === '') jar.delete(name);
      else jar.set(name, { value, path: pathAttr });
    }
  }

  header(url: URL): string {
    const jar = this.cookies.get(url.origin);
    if (!jar) return '';
    return [...jar].filter(([, c]) => url.pathname.startsWith(c.path)).map(([name, c]) => `${name}=${c.value}`).join('; ');
  }

  get(origin: string, name: string): string | null {
    return this.cookies.get(origin)?.get(name)?.value ?? null;
  }
}

export interface Visit {
  url: URL;
  status: number;
  location: URL | null;
  text: string;
}

/** One request, no redirect followed; cookies kept. */
export async function visit(jar: CookieJar, url: URL, form?: Record<string, string>): Promise<Visit> {
  const headers: Record<string, string> = {};
  const cookie = jar.header(url);
  if (cookie) headers.Cookie = cookie;
  if (form) headers['Content-Type'] = 'application/x-www-form-urlencoded';
  const res = await fetch(url, { method: form ? 'POST' : 'GET', headers, redirect: 'manual', ...(form ? { body: new URLSearchParams(form).toString() } : {}) });
  jar.store(url, res.headers.getSetCookie());
  const location = res.headers.get('location');
  return { url, status: res.status, location: location ? new URL(location, url) : null, text: await res.text() };
}

export interface ProviderSignIn {
  /** The callback URL the provider sent the browser to (with its code and state). */
  callbackUrl: URL;
  /** ClawLoops' answer to it: where it sends the browser next. */
  answer: Visit;
}

/**
 * From ClawLoops' "Sign in with…" through the provider's own login page (as `login`) to the
 * callback. `beforeCallback` may change the callback URL first (a tampered state).
 */
export async function signInThroughProvider(jar: CookieJar, publicUrl: string, login: string, beforeCallback: (url: URL) => URL = (u) => u): Promise<ProviderSignIn> {
  const callbackPath = '/api/v1/auth/oidc/callback';
  let step = await visit(jar, new URL('/api/v1/auth/oidc/start', publicUrl));
  for (let hops = 0; hops < 20; hops++) {
    if (step.location) {
      if (step.location.origin === publicUrl && step.location.pathname === callbackPath) {
        const callbackUrl = beforeCallback(step.location);
        return { callbackUrl, answer: await visit(jar, callbackUrl) };
      }
      step = await visit(jar, step.location);
      continue;
    }
    const action = /<form[^>]*action="([^"]+)"/.exec(step.text)?.[1];
    if (step.status !== 200 || !action) throw new Error(`unexpected answer at ${step.url.href}: ${step.status} ${step.text.slice(0, 300)}`);
    step = await visit(jar, new URL(action.replace(/&amp;/g, '&'), step.url), { prompt: 'login', login, password: 'any password' });
  }
  throw new Error('the sign-in did not come back to ClawLoops within 20 steps');
}

export const TEST_ADMIN_PASSWORD = 'correct horse battery staple';

/** The provider's people: alice and root have verified emails, root is in the admin group, mallory's email is unverified. */
export const TEST_USERS: Record<string, ProviderUser> = {
  alice: { email: 'alice@example.com', email_verified: true, preferred_username: 'alice', name: 'Alice Liddell', groups: ['staff'] },
  root: { email: 'root@example.com', email_verified: true, preferred_username: 'root', groups: ['staff', 'clawloops-admins'] },
  mallory: { email: 'mallory@example.com', email_verified: false, preferred_username: 'mallory', groups: ['staff'] },
};

export interface OidcAppliance {
  server: Server;
  provider: TestProvider;
  /** The first admin's session cookie (set up with a password, as on every installation). */
  admin: string;
}

/** A provider and a server configured for it (the provider must know the server's redirect URI first). */
export async function startOidcAppliance(vars: Record<string, string> = {}, options: { publicClient?: boolean } = {}): Promise<OidcAppliance> {
  const port = await freePort();
  const publicUrl = `http://127.0.0.1:${port}`;
  const provider = await startProvider(publicUrl, TEST_USERS, options);
  const child = spawnMain('server', {
    CLAWLOOPS_PORT: String(port),
    CLAWLOOPS_EGRESS_PORT: String(await freePort()),
    CLAWLOOPS_HOST: '127.0.0.1',
    CLAWLOOPS_PUBLIC_URL: publicUrl,
    CLAWLOOPS_DATA_DIR: tempDir(),
    CLAWLOOPS_LOG_LEVEL: 'info',
    CLAWLOOPS_DOCKER_SOCKET: DOCKER_SOCKET,
    CLAWLOOPS_OIDC_ISSUER: provider.issuer,
    CLAWLOOPS_OIDC_CLIENT_ID: CLIENT_ID,
    CLAWLOOPS_OIDC_CLIENT_SECRET: options.publicClient ? '' : CLIENT_SECRET,
    CLAWLOOPS_OIDC_SCOPES: 'openid email profile groups',
    CLAWLOOPS_OIDC_ADMIN_GROUP: 'clawloops-admins',
    CLAWLOOPS_OIDC_ROLE_SYNC: 'true',
    CLAWLOOPS_OIDC_DISPLAY_NAME: 'Test IdP',
    ...vars,
  });
  await child.waitForLog(isListening, 'that it is listening');
  const server: Server = { child, port, publicUrl };
  const setupUrl = child.logs().find((l) => 'setupUrl' in l)?.setupUrl;
  const token = new URL(String(setupUrl)).searchParams.get('token');
  const setup = await call(server, 'POST', '/api/v1/setup', { json: { token, username: 'admin', password: TEST_ADMIN_PASSWORD }, headers: { Origin: publicUrl } });
  if (setup.status !== 201) throw new Error(`setup failed: ${setup.status} ${setup.text}`);
  const admin = String(setup.headers['set-cookie']?.find((c) => c.startsWith('clawloops_session='))?.split(';')[0]);
  return { server, provider, admin };
}

