/** One message, rendered: what a mail server is handed. */
export interface MailMessage {
  to: string;
  subject: string;
  text: string;
  html: string;
}

/**
 * The port the platform's mails leave through (smtpMailer.ts implements it with nodemailer; tests
 * pass fakes). `send` resolves once the server accepted the message and rejects with a
 * MailDeliveryError otherwise.
 */
export interface Mailer {
  send(message: MailMessage): Promise<void>;
  close(): void;
}

/**
 * Why a message was not delivered, in words safe for the log and the audit trail (never the
 * message, never credentials). Permanent failures (the server refused the sender, the recipient
 * or the credentials) are not tried again; anything else (no connection, a timeout, a 4xx) is.
 */
export class MailDeliveryError extends Error {
  constructor(
    message: string,
    readonly permanent: boolean,
  ) {
    super(message);
    this.name = 'MailDeliveryError';
  }
}
