import { useEffect, useSyncExternalStore } from 'react';
import { UploadQueue } from '../lib/uploadQueue';
import { xhrTransport } from './filesApi';

/**
 * One upload queue for the signed-in console: uploads go on while the member looks at another
 * page, and the Files page shows them again on return. It belongs to one session: ending the
 * session ends it (endUploads), so nothing queued can go out under the next user's cookie.
 */
let shared: UploadQueue<File> | null = null;

export function uploadQueue(): UploadQueue<File> {
  shared ??= new UploadQueue<File>({
    transport: xhrTransport(),
    now: () => performance.now(),
    schedule: (flush) => {
      requestAnimationFrame(() => flush());
    },
  });
  return shared;
}

/** Cancels every upload and forgets the queue and its rows (sign-out, session ended). */
export function endUploads(): void {
  shared?.cancelAll();
  shared = null;
}

/**
 * While uploads run, leaving the console (closing the tab, reloading) would cut them short: the
 * browser asks first, whichever page is shown.
 */
export function useLeaveGuard(): void {
  // The signed-in frame asks for the queue first, so it follows every upload of the session.
  const queue = uploadQueue();
  const active = useSyncExternalStore(queue.subscribe, () => queue.getSnapshot().active);
  useEffect(() => {
    if (active === 0) return;
    const ask = (event: BeforeUnloadEvent) => event.preventDefault();
    window.addEventListener('beforeunload', ask);
    return () => window.removeEventListener('beforeunload', ask);
  }, [active]);
}
