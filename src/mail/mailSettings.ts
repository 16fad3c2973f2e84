import { isIP } from 'node:net';
import { z } from 'zod';

/** Where the platform's mails go (CLAWLOOPS_SMTP_URL) and whom they come from (CLAWLOOPS_MAIL_FROM). */
export interface MailSettings {
  smtp: SmtpSettings;
  /** The From header as configured, e.g. `ClawLoops <clawloops@example.com>`. */
  from: string;
}

export interface SmtpSettings {
  host: string;
  port: number;
  /** TLS from the first byte (smtps://); otherwise STARTTLS when the server offers it. */
  secure: boolean;
  /** STARTTLS is required: credentials never cross the network in the clear. */
  requireTls: boolean;
  user: string | null;
  password: string | null;
}

const LOOPBACK = /^(localhost|127(?:\.\d{1,3}){3}|::1)$/;

/**
 * `smtp://[user[:password]@]host[:port]` (port 587, STARTTLS when offered) or `smtps://…` (port
 * 465, TLS from the start); user and password percent-encoded. A problem never repeats the URL:
 * it may carry a password.
 */
export function parseSmtpUrl(raw: string): SmtpSettings | { problem: string } {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { problem: 'must be a URL like smtp://user:password@mail.example.com:587 or smtps://mail.example.com' };
  }
  if (url.protocol !== 'smtp:' && url.protocol !== 'smtps:') return { problem: `must start with smtp:// or smtps://, not ${url.protocol}//` };
  if ((url.pathname !== '' && url.pathname !== '/') || url.search || url.hash) return { problem: 'must be scheme, credentials, host and port only (no path or query)' };
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (!host) return { problem: 'must name the mail server\'s host' };
  let user: string | null;
  let password: string | null;
  try {
    user = url.username ? decodeURIComponent(url.username) : null;
    password = url.password ? decodeURIComponent(url.password) : null;
  } catch {
    return { problem: 'has a badly percent-encoded user or password' };
  }
  if (password !== null && user === null) return { problem: 'has a password but no user' };
  const secure = url.protocol === 'smtps:';
  return {
    host,
    port: url.port ? Number(url.port) : secure ? 465 : 587,
    secure,
    // A relay on this machine may speak plain SMTP; a password sent anywhere else goes over TLS.
    requireTls: !secure && user !== null && !(LOOPBACK.test(host) || (isIP(host) === 4 && host.startsWith('127.'))),
    user,
    password,
  };
}

const ADDRESS = z.email();

/** `Name <address>` or a bare address; one line (it becomes a header). */
export function parseMailFrom(raw: string): { from: string } | { problem: string } {
  if (/[\r\n]/.test(raw) || raw.length > 320) return { problem: 'must be one line like ClawLoops <clawloops@example.com>' };
  const named = /^([^<>]*)<([^<>\s]+)>$/.exec(raw);
  const address = named ? (named[2] ?? '') : raw;
  if (!ADDRESS.safeParse(address).success) return { problem: `must be an address like clawloops@example.com or ClawLoops <clawloops@example.com>, got "${raw}"` };
  return { from: raw };
}
