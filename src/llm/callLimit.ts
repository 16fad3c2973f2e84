/** Why a model call was cut short. */
export type CallEnd = 'client' | 'timeout';

/**
 * One model call's end, whichever comes first: its deadline (one timer, cleared when the call
 * ends) or its client leaving. Either cuts the upstream request the call bound to it. A plain
 * callback rather than an AbortSignal: the signal machinery (a controller, AbortSignal.any, the
 * listener http.request adds) cost more per call than the rest of the call's bookkeeping.
 */
export class CallLimit {
  ended: CallEnd | null = null;
  private cut: ((reason: Error) => void) | null = null;
  private readonly timer: NodeJS.Timeout;

  constructor(timeoutMs: number) {
    this.timer = setTimeout(() => this.end('timeout'), timeoutMs);
    this.timer.unref();
  }

  /** What ends the upstream request; called at once if the call already ended. */
  bind(cut: (reason: Error) => void): void {
    if (this.ended) cut(reasonOf(this.ended));
    else this.cut = cut;
  }

  clientLeft(): void {
    this.end('client');
  }

  /** The call is over: the timer goes, and nothing is cut any more. */
  clear(): void {
    clearTimeout(this.timer);
    this.cut = null;
  }

  private end(why: CallEnd): void {
    if (this.ended) return;
    this.ended = why;
    const cut = this.cut;
    this.cut = null;
    cut?.(reasonOf(why));
  }
}

const reasonOf = (why: CallEnd): Error => new Error(why === 'client' ? 'the client disconnected' : 'the call timed out');
