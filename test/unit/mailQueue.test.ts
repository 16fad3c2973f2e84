import { MailDeliveryError, type MailMessage, type Mailer } from '../../src/mail/mailer';
import { MailQueue, type MailQueueOptions } from '../../src/mail/mailQueue';

/** A transport that answers each send as the test scripts it: ok, a failure, or held until released. */
class FakeTransport implements Mailer {
  readonly delivered: string[] = [];
  readonly attempts: string[] = [];
  /** Outcomes to use, in order, before every send succeeds: 'ok', 'retry', 'refuse'. */
  script: ('ok' | 'retry' | 'refuse')[] = [];
  hold: Promise<void> | null = null;
  closed = false;

  async send(message: MailMessage): Promise<void> {
    this.attempts.push(message.to);
    if (this.hold) await this.hold;
    const outcome = this.script.shift() ?? 'ok';
    if (outcome === 'retry') throw new MailDeliveryError('ECONNECTION: connect ECONNREFUSED', false);
    if (outcome === 'refuse') throw new MailDeliveryError('EENVELOPE 550: mailbox unavailable', true);
    this.delivered.push(message.to);
  }

  close(): void {
    this.closed = true;
  }
}

const message = (to: string): MailMessage => ({ to, subject: 's', text: 't', html: '<p>t</p>' });

function queueOf(options: Partial<MailQueueOptions> = {}) {
  const transport = new FakeTransport();
  const sent: [string, number][] = [];
  const failed: [string, string, number][] = [];
  const queue = new MailQueue<string>(
    transport,
    { sent: (about, attempts) => sent.push([about, attempts]), failed: (about, reason, attempts) => failed.push([about, reason, attempts]) },
    { capacity: 10, retryDelaysMs: [5, 5], ...options },
  );
  const idle = async () => {
    while (queue.pending > 0) await new Promise((resolve) => setTimeout(resolve, 2));
  };
  return { transport, queue, sent, failed, idle };
}

test('enqueue returns at once; messages go out one at a time, in order, each reported sent', async () => {
  const { transport, queue, sent, idle } = queueOf();
  let release: () => void = () => undefined;
  transport.hold = new Promise((resolve) => (release = resolve));
  expect(queue.enqueue({ message: message('a@x'), about: 'a' })).toBe(true);
  expect(queue.enqueue({ message: message('b@x'), about: 'b' })).toBe(true);
  expect(queue.pending).toBe(2);
  await new Promise((resolve) => setTimeout(resolve, 5));
  expect(transport.attempts).toEqual(['a@x']);
  transport.hold = null;
  release();
  await idle();
  expect(transport.delivered).toEqual(['a@x', 'b@x']);
  expect(sent).toEqual([
    ['a', 1],
    ['b', 1],
  ]);
});

test('a failure that may pass is tried again after the delays, and others go out meanwhile', async () => {
  const { transport, queue, sent, failed, idle } = queueOf();
  transport.script = ['retry', 'ok', 'retry'];
  queue.enqueue({ message: message('a@x'), about: 'a' });
  queue.enqueue({ message: message('b@x'), about: 'b' });
  await idle();
  expect(transport.attempts).toEqual(['a@x', 'b@x', 'a@x', 'a@x']);
  expect(sent).toEqual([
    ['b', 1],
    ['a', 3],
  ]);
  expect(failed).toEqual([]);
});

test('out of retries, or refused for good: given up and reported with the reason and the attempts', async () => {
  const { transport, queue, failed, idle } = queueOf();
  transport.script = ['retry', 'retry', 'retry', 'refuse'];
  queue.enqueue({ message: message('a@x'), about: 'a' });
  await idle();
  queue.enqueue({ message: message('b@x'), about: 'b' });
  await idle();
  expect(failed).toEqual([
    ['a', 'ECONNECTION: connect ECONNREFUSED', 3],
    ['b', 'EENVELOPE 550: mailbox unavailable', 1],
  ]);
  expect(transport.attempts).toEqual(['a@x', 'a@x', 'a@x', 'b@x']);
});

test('bounded: past the capacity a message is refused and reported, never held', async () => {
  const { transport, queue, failed, idle } = queueOf({ capacity: 2 });
  let release: () => void = () => undefined;
  transport.hold = new Promise((resolve) => (release = resolve));
  expect(queue.enqueue({ message: message('a@x'), about: 'a' })).toBe(true);
  expect(queue.enqueue({ message: message('b@x'), about: 'b' })).toBe(true);
  expect(queue.enqueue({ message: message('c@x'), about: 'c' })).toBe(false);
  expect(failed).toEqual([['c', 'the mail queue is full (2 messages)', 0]]);
  transport.hold = null;
  release();
  await idle();
  expect(transport.delivered).toEqual(['a@x', 'b@x']);
});

test('drain: a message waiting for its retry is tried at once; what does not finish in time is given up', async () => {
  const { transport, queue, sent, failed } = queueOf({ retryDelaysMs: [60_000] });
  transport.script = ['retry'];
  queue.enqueue({ message: message('a@x'), about: 'a' });
  await new Promise((resolve) => setTimeout(resolve, 5));
  expect(queue.pending).toBe(1);
  await queue.drain(1_000);
  expect(sent).toEqual([['a', 2]]);

  const second = queueOf();
  second.transport.hold = new Promise(() => undefined);
  second.queue.enqueue({ message: message('a@x'), about: 'a' });
  second.queue.enqueue({ message: message('b@x'), about: 'b' });
  await second.queue.drain(20);
  // The one the server still holds is given up too (its late answer is not reported again).
  expect(second.failed).toEqual([
    ['b', 'the platform shut down before it could be sent', 0],
    ['a', 'the platform shut down before it could be sent', 1],
  ]);
  // Shut: nothing more is taken.
  expect(second.queue.enqueue({ message: message('c@x'), about: 'c' })).toBe(false);
  expect(second.failed.at(-1)).toEqual(['c', 'the platform is shutting down', 0]);
  // Closing after the drain reports nothing twice.
  second.queue.close();
  expect(second.failed).toHaveLength(3);
  expect(failed).toEqual([]);
});

test('close clears the retry timers and closes the transport', async () => {
  const { transport, queue, failed } = queueOf({ retryDelaysMs: [60_000] });
  transport.script = ['retry'];
  queue.enqueue({ message: message('a@x'), about: 'a' });
  await new Promise((resolve) => setTimeout(resolve, 5));
  queue.close();
  expect(transport.closed).toBe(true);
  expect(failed).toEqual([['a', 'the platform shut down before it could be sent', 1]]);
  expect(queue.pending).toBe(0);
});

test('a reporter that throws does not stop the queue', async () => {
  const transport = new FakeTransport();
  const queue = new MailQueue<string>(transport, { sent: () => { throw new Error('database closed'); }, failed: () => undefined }, { capacity: 5, retryDelaysMs: [] });
  queue.enqueue({ message: message('a@x'), about: 'a' });
  queue.enqueue({ message: message('b@x'), about: 'b' });
  while (queue.pending > 0) await new Promise((resolve) => setTimeout(resolve, 2));
  expect(transport.delivered).toEqual(['a@x', 'b@x']);
});
