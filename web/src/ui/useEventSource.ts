import { useEffect, useRef, useState } from 'react';
import { checkSession } from '../api/client';

export type StreamState = 'connecting' | 'open' | 'reconnecting' | 'closed';

/**
 * Follows a Server-Sent Events stream of the API while the component is shown. EventSource
 * reconnects by itself after a drop; the server sends the current state first on each connect,
 * so nothing is missed. `handlers` may change between renders without reconnecting.
 */
export function useEventSource(url: string | null, handlers: Record<string, (data: unknown) => void>): StreamState {
  const [state, setState] = useState<StreamState>('connecting');
  const current = useRef(handlers);
  current.current = handlers;
  const names = Object.keys(handlers).sort().join(',');

  useEffect(() => {
    if (!url) {
      setState('closed');
      return;
    }
    const source = new EventSource(url, { withCredentials: true });
    setState('connecting');
    source.onopen = () => setState('open');
    source.onerror = () => {
      setState(source.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting');
      // EventSource hides the status: a signed-out session looks like any failure. Ask.
      checkSession();
    };
    for (const name of names.split(',').filter(Boolean)) {
      source.addEventListener(name, (event) => {
        let data: unknown = null;
        try {
          data = JSON.parse((event as MessageEvent<string>).data);
        } catch {
          return;
        }
        current.current[name]?.(data);
        // A stream that announces its end is not reopened (EventSource would retry forever).
        if (name === 'end') {
          source.close();
          setState('closed');
        }
      });
    }
    return () => source.close();
  }, [url, names]);

  return state;
}
