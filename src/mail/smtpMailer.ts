import nodemailer, { type Transporter } from 'nodemailer';
import { MailDeliveryError, type MailMessage, type Mailer } from './mailer';
import type { MailSettings } from './mailSettings';

/** How long one delivery may wait on the server at each step before it counts as failed (and is retried). */
const TIMEOUTS = { connectionTimeout: 15_000, greetingTimeout: 15_000, socketTimeout: 30_000 };

interface SmtpFailure {
  code?: unknown;
  responseCode?: unknown;
  response?: unknown;
  message?: unknown;
}

/**
 * The Mailer port over SMTP, through nodemailer. One connection per message: the platform sends
 * a handful a day, and a pooled connection the server dropped in between only adds failures.
 */
export class SmtpMailer implements Mailer {
  private readonly transport: Transporter;

  constructor(private readonly settings: MailSettings) {
    const { smtp } = settings;
    this.transport = nodemailer.createTransport({
      host: smtp.host,
      port: smtp.port,
      secure: smtp.secure,
      requireTLS: smtp.requireTls,
      ...(smtp.user !== null ? { auth: { user: smtp.user, pass: smtp.password ?? '' } } : {}),
      ...TIMEOUTS,
      // Nothing of a conversation reaches a log: it holds the invitation links.
      logger: false,
      debug: false,
      // Messages are text the platform wrote; nothing in them may make nodemailer read a file or fetch a URL.
      disableFileAccess: true,
      disableUrlAccess: true,
    });
  }

  async send(message: MailMessage): Promise<void> {
    try {
      await this.transport.sendMail({ from: this.settings.from, to: message.to, subject: message.subject, text: message.text, html: message.html });
    } catch (err) {
      throw this.deliveryError(err as SmtpFailure);
    }
  }

  close(): void {
    this.transport.close();
  }

  private deliveryError(err: SmtpFailure): MailDeliveryError {
    const code = typeof err.code === 'string' ? err.code : null;
    const status = typeof err.responseCode === 'number' ? err.responseCode : null;
    let text = typeof err.message === 'string' ? err.message : 'unknown error';
    // Whatever the server or the library said, the password is never repeated.
    const { password } = this.settings.smtp;
    if (password) text = text.split(password).join('[redacted]');
    text = text.replace(/\s+/g, ' ').slice(0, 300);
    const permanent = (status !== null && status >= 500 && status < 600) || code === 'EAUTH' || code === 'EENVELOPE';
    return new MailDeliveryError([code, status].filter((x) => x !== null).join(' ') + (code || status ? ': ' : '') + text, permanent);
  }
}
