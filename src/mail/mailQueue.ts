import { MailDeliveryError, type MailMessage, type Mailer } from './mailer';

export interface MailQueueOptions {
  /** Messages waiting, being sent or waiting for a retry at once; one more is refused (and reported). */
  capacity: number;
  /** Waits before each retry; a message is tried once plus once per entry. */
  retryDelaysMs: number[];
}

export const DEFAULT_MAIL_QUEUE: MailQueueOptions = { capacity: 500, retryDelaysMs: [5_000, 30_000, 120_000] };

export interface MailJob<T> {
  message: MailMessage;
  /** What the caller needs back in its reports (kind, recipient): never read by the queue. */
  about: T;
}

export interface MailQueueEvents<T> {
  sent(about: T, attempts: number): void;
  /** Given up: refused for good, out of retries, the queue full, or shut down first. */
  failed(about: T, reason: string, attempts: number): void;
}

interface Entry<T> {
  job: MailJob<T>;
  attempts: number;
  timer: NodeJS.Timeout | null;
  /** Given up while the server still had it (shutdown): its late outcome is not reported again. */
  abandoned: boolean;
}

/**
 * Sends in the background, one message at a time, so that no user-facing operation ever waits
 * on a mail server: enqueue() returns at once. Bounded in what it holds; a message that fails
 * for a reason that may pass (no connection, a timeout, a 4xx) is tried again after a delay.
 */
export class MailQueue<T> {
  private readonly ready: Entry<T>[] = [];
  private readonly waiting = new Set<Entry<T>>();
  private sending: Entry<T> | null = null;
  private closed = false;
  private idle: (() => void)[] = [];

  constructor(
    private readonly mailer: Mailer,
    private readonly events: MailQueueEvents<T>,
    private readonly options: MailQueueOptions = DEFAULT_MAIL_QUEUE,
  ) {}

  /** Messages not yet delivered or given up. */
  get pending(): number {
    return this.ready.length + this.waiting.size + (this.sending ? 1 : 0);
  }

  /** False (and reported as failed) when the queue is full or shut down. */
  enqueue(job: MailJob<T>): boolean {
    if (this.closed || this.pending >= this.options.capacity) {
      this.report(() => this.events.failed(job.about, this.closed ? 'the platform is shutting down' : `the mail queue is full (${this.options.capacity} messages)`, 0));
      return false;
    }
    this.ready.push({ job, attempts: 0, timer: null, abandoned: false });
    this.pump();
    return true;
  }

  /**
   * Shutdown: messages waiting for a retry are tried once more now, and whatever is not done
   * within `timeoutMs` is given up (reported as failed). Nothing is accepted afterwards.
   */
  async drain(timeoutMs: number): Promise<void> {
    this.closed = true;
    for (const entry of [...this.waiting]) this.retryNow(entry);
    if (this.pending > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.idle.push(resolve)),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, timeoutMs);
        }),
      ]);
      clearTimeout(timer);
    }
    this.abandon();
  }

  /** Stops at once: timers cleared, what was left given up, the transport closed. */
  close(): void {
    this.closed = true;
    this.abandon();
    this.mailer.close();
  }

  private abandon(): void {
    const left = [...this.ready, ...this.waiting, ...(this.sending ? [this.sending] : [])].filter((entry) => !entry.abandoned);
    for (const entry of left) entry.abandoned = true;
    this.ready.length = 0;
    for (const entry of this.waiting) if (entry.timer) clearTimeout(entry.timer);
    this.waiting.clear();
    for (const entry of left) this.report(() => this.events.failed(entry.job.about, 'the platform shut down before it could be sent', entry.attempts));
  }

  private retryNow(entry: Entry<T>): void {
    if (entry.timer) clearTimeout(entry.timer);
    entry.timer = null;
    this.waiting.delete(entry);
    this.ready.push(entry);
    this.pump();
  }

  private pump(): void {
    if (this.sending) return;
    const entry = this.ready.shift();
    if (!entry) {
      if (this.waiting.size === 0) for (const resolve of this.idle.splice(0)) resolve();
      return;
    }
    this.sending = entry;
    entry.attempts++;
    void this.mailer
      .send(entry.job.message)
      .then(
        () => {
          if (!entry.abandoned) this.report(() => this.events.sent(entry.job.about, entry.attempts));
        },
        (err: unknown) => {
          if (!entry.abandoned) this.failedOnce(entry, err);
        },
      )
      .finally(() => {
        this.sending = null;
        this.pump();
      });
  }

  private failedOnce(entry: Entry<T>, err: unknown): void {
    const permanent = err instanceof MailDeliveryError ? err.permanent : false;
    const reason = err instanceof Error ? err.message : String(err);
    const delay = this.options.retryDelaysMs[entry.attempts - 1];
    if (permanent || delay === undefined || this.closed) {
      this.report(() => this.events.failed(entry.job.about, reason, entry.attempts));
      return;
    }
    entry.timer = setTimeout(() => this.retryNow(entry), delay);
    entry.timer.unref();
    this.waiting.add(entry);
  }

  /** A report that throws (a closed database) must not stop the queue. */
  private report(emit: () => void): void {
    try {
      emit();
    } catch {
      // The reporter logs on its own; nothing more can be done from here.
    }
  }
}
