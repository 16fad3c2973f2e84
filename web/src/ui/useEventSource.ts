import { useEffect, useRef, useState } from 'react';
import { checkSession } from '../api/client';

export type StreamState = 'connecting' | 'open' | 'reconnecting' | 'closed';

/** Events a handler may be given besides the server's own: the stream (re)opened. */
export const OPEN = 'open';
const RETRY_MS = [1_000, 2_000, 5_000, 10_000, 30_000];

/**
 * Follows a Server-Sent Events stream of the API while the component is shown. The server sends
 * the current state first on each connect, so nothing is missed after a reconnect; a handler for
 * `open` hears each (re)connect (e.g. to drop lines a log stream is about to send again).
 * EventSource retries a dropped connection by itself but gives up for good on a refused one (a
 * proxy's 502 while the control plane restarts): this retries those too, with a growing pause.
 * A stream that ends by saying so (`end`, or a server-sent `error`) is not reopened.
 * `handlers` may change between renders without reconnecting.
 */
export function useEventSource(url: string | null, handlers: Record<string, (data: unknown) => void>): StreamState {
  const [state, setState] = useState<StreamState>('connecting');
  // A new generation reopens a stream EventSource gave up on; failures in a row set the pause.
  const [generation, setGeneration] = useState(0);
  const failures = useRef(0);
  const current = useRef(handlers);
  current.current = handlers;
  const names = Object.keys(handlers)
    .filter((name) => name !== OPEN)
    .sort()
    .join(',');

  useEffect(() => {
    if (!url) {
      setState('closed');
      return;
    }
    const source = new EventSource(url, { withCredentials: true });
    let retry: ReturnType<typeof setTimeout> | null = null;
    let finished = false;
    setState(failures.current === 0 ? 'connecting' : 'reconnecting');
    source.onopen = () => {
      failures.current = 0;
      setState('open');
      current.current[OPEN]?.(null);
    };
    source.onerror = () => {
      // EventSource hides the status: a signed-out session looks like any failure. Ask.
      checkSession();
      if (source.readyState !== EventSource.CLOSED) return setState('reconnecting');
      if (finished) return;
      setState('reconnecting');
      const pause = RETRY_MS[Math.min(failures.current, RETRY_MS.length - 1)];
      failures.current++;
      retry = setTimeout(() => setGeneration((n) => n + 1), pause);
    };
    const finish = () => {
      finished = true;
      source.close();
      setState('closed');
    };
    for (const name of names.split(',').filter(Boolean)) {
      source.addEventListener(name, (event) => {
        const text = (event as MessageEvent<string>).data;
        // A connection failure also arrives as an `error` event, without data: not the server's.
        if (typeof text !== 'string') return;
        let data: unknown;
        try {
          data = JSON.parse(text);
        } catch {
          return;
        }
        current.current[name]?.(data);
        if (name === 'end' || name === 'error') finish();
      });
    }
    return () => {
      finished = true;
      if (retry !== null) clearTimeout(retry);
      source.close();
    };
  }, [url, names, generation]);

  return state;
}
