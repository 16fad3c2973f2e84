import type { AddressInfo } from 'node:net';
import { simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';

/** One message as the SMTP server received it: the envelope, and the parsed mail. */
export interface ReceivedMail {
  envelopeFrom: string;
  envelopeTo: string[];
  subject: string;
  text: string;
  html: string;
  /** The Content-Language or html lang the mail declares, if any. */
  htmlLang: string | null;
}

export interface SmtpSink {
  port: number;
  /** What CLAWLOOPS_SMTP_URL points at. */
  url: string;
  received: ReceivedMail[];
  /** From now on, every recipient is refused with this SMTP status (null: accepted again). */
  refuseRecipients: number | null;
  /** How long the server takes to accept a message once it has it all (a slow server). */
  acceptDelayMs: number;
  close(): Promise<void>;
}

/**
 * A real SMTP server (smtp-server, the counterpart of nodemailer) on 127.0.0.1 at a free port:
 * plain SMTP without authentication, as a relay on the same machine would be. STARTTLS is not
 * offered (it would need a certificate the client trusts).
 */
export async function startSmtpSink(): Promise<SmtpSink> {
  const received: ReceivedMail[] = [];
  const delays = new Set<NodeJS.Timeout>();
  const sink: SmtpSink = {
    port: 0,
    url: '',
    received,
    refuseRecipients: null,
    acceptDelayMs: 0,
    close: () => {
      for (const timer of delays) clearTimeout(timer);
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    banner: 'clawloops test sink',
    onRcptTo(_address, _session, callback) {
      if (sink.refuseRecipients !== null) {
        const refusal = Object.assign(new Error('Mailbox unavailable (test sink refuses everyone)'), { responseCode: sink.refuseRecipients });
        callback(refusal);
        return;
      }
      callback();
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        void simpleParser(Buffer.concat(chunks)).then(
          (parsed) => {
            const html = typeof parsed.html === 'string' ? parsed.html : '';
            received.push({
              envelopeFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
              envelopeTo: session.envelope.rcptTo.map((r) => r.address),
              subject: parsed.subject ?? '',
              text: parsed.text ?? '',
              html,
              htmlLang: /<html lang="([^"]+)"/.exec(html)?.[1] ?? null,
            });
            const timer = setTimeout(() => {
              delays.delete(timer);
              callback();
            }, sink.acceptDelayMs);
            delays.add(timer);
          },
          (err: unknown) => callback(err as Error),
        );
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  sink.port = (server.server.address() as AddressInfo).port;
  sink.url = `smtp://127.0.0.1:${sink.port}`;
  return sink;
}
