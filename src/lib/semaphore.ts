/**
 * Limits how many holders run at once; the rest wait in FIFO order and are told their place in
 * the queue whenever it changes (so a progress stream can say "queued, 3 ahead").
 */
export class Semaphore {
  private active = 0;
  private readonly waiting: { grant: () => void; onPosition: (ahead: number) => void }[] = [];

  constructor(private readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new Error(`semaphore limit must be a positive integer, got ${limit}`);
  }

  /** Resolves with a release function once a slot is free. */
  acquire(onPosition: (ahead: number) => void = () => {}): Promise<() => void> {
    return new Promise((resolve) => {
      const grant = () => {
        this.active++;
        let released = false;
        resolve(() => {
          if (released) return;
          released = true;
          this.active--;
          this.next();
        });
      };
      if (this.active < this.limit) grant();
      else {
        this.waiting.push({ grant, onPosition });
        onPosition(this.waiting.length - 1);
      }
    });
  }

  get queued(): number {
    return this.waiting.length;
  }

  private next(): void {
    const head = this.waiting.shift();
    if (!head) return;
    head.grant();
    this.waiting.forEach((w, i) => w.onPosition(i));
  }
}
