/**
 * The BUILT server's mail at shutdown, against a real SMTP server the test starts: a mail queued
 * just before SIGTERM still goes out while the server drains; a server that never answers holds
 * the shutdown up only briefly, and the mail is given up and logged (never its link).
 */
import {
  assertBuilt,
  call,
  cleanUpProcesses,
  field,
  login,
  MAIN,
  processTest,
  sessionCookie,
  startServer,
  tempDir,
  type Server,
} from '../support/processes';
import { startSmtpSink, type SmtpSink } from '../support/smtpSink';

const ADMIN_PASSWORD = 'correct horse battery staple';
let sink: SmtpSink | null = null;

beforeAll(() => assertBuilt([MAIN]));
afterEach(async () => {
  await cleanUpProcesses();
  await sink?.close();
  sink = null;
});

/** A server with mail to the sink and an administrator from the environment, signed in. */
async function mailingServer(smtp: SmtpSink): Promise<{ server: Server; cookie: string }> {
  const server = await startServer(tempDir(), {
    CLAWLOOPS_SMTP_URL: smtp.url,
    CLAWLOOPS_MAIL_FROM: 'ClawLoops <clawloops@127.0.0.1.test>',
    CLAWLOOPS_ADMIN_USERNAME: 'admin',
    CLAWLOOPS_ADMIN_PASSWORD: ADMIN_PASSWORD,
    CLAWLOOPS_SHUTDOWN_TIMEOUT: '3s',
  });
  const signedIn = await login(server, 'admin', ADMIN_PASSWORD);
  expect(signedIn.status).toBe(200);
  return { server, cookie: sessionCookie(signedIn) };
}

async function invite(server: Server, cookie: string): Promise<string> {
  const res = await call(server, 'POST', '/api/v1/admin/invitations', { json: { email: 'late@example.com' }, headers: { Origin: server.publicUrl, Cookie: cookie } });
  expect(res.status).toBe(201);
  expect(field(res.body, 'emailQueued')).toBe(true);
  return String(field(res.body, 'link')).split('/invite/')[1] ?? '';
}

processTest('a mail queued just before SIGTERM is still delivered while the server drains', async () => {
  sink = await startSmtpSink();
  sink.acceptDelayMs = 500;
  const { server, cookie } = await mailingServer(sink);
  const secret = await invite(server, cookie);
  server.child.proc.kill('SIGTERM');
  expect(await server.child.waitForExit()).toEqual({ code: 0, signal: null });
  expect(sink.received.map((m) => m.envelopeTo)).toEqual([['late@example.com']]);
  expect(server.child.logs().some((l) => l.msg === 'mail sent' && l.kind === 'invitation')).toBe(true);
  expect(server.child.output).not.toContain(secret);
});

processTest('a mail server that never answers holds the shutdown up only briefly; the mail is given up and logged', async () => {
  sink = await startSmtpSink();
  sink.acceptDelayMs = 120_000;
  const { server, cookie } = await mailingServer(sink);
  const secret = await invite(server, cookie);
  server.child.proc.kill('SIGTERM');
  // The drain waits at most min(5 s, CLAWLOOPS_SHUTDOWN_TIMEOUT = 3 s), within the exit wait.
  expect(await server.child.waitForExit()).toEqual({ code: 0, signal: null });
  const given = server.child.logs().find((l) => l.msg === 'mail not sent');
  expect(given).toMatchObject({ kind: 'invitation', reason: 'the platform shut down before it could be sent' });
  expect(server.child.output).not.toContain(secret);
});
