import { ApiError } from './apiError';
import type { SessionState } from './types';

/**
 * The one way the console talks to the control plane: JSON in and out, cookies for the session,
 * and every failure turned into an ApiError carrying the server's `{error: {code, message}}` so a
 * page can show it in words next to where it happened.
 */
export { ApiError };

export const API = '/api/v1';
/** Dispatched on window when an API call finds the session gone. */
export const SESSION_ENDED = 'clawloops:session-ended';

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface RequestOptions {
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/** Reads the server's error shape; anything else (a proxy's HTML page, a dropped connection) gets a plain message. */
async function errorOf(res: Response): Promise<ApiError> {
  const text = await res.text().catch(() => '');
  try {
    const parsed = JSON.parse(text) as { error?: { code?: unknown; message?: unknown; [field: string]: unknown } };
    if (parsed.error && typeof parsed.error.message === 'string') {
      // Whatever else the error carries (conflicting names, the current ETag, a limit) is its details.
      const { code, message, ...rest } = parsed.error;
      return new ApiError(res.status, typeof code === 'string' ? code : 'ERROR', message as string, Object.keys(rest).length > 0 ? rest : null);
    }
  } catch {
    // not JSON
  }
  return new ApiError(res.status, 'HTTP_' + res.status, `The server answered ${res.status} ${res.statusText}.`);
}

export async function request<T>(method: Method, path: string, options: RequestOptions = {}): Promise<T> {
  let res: Response;
  try {
    res = await fetch(API + path, {
      method,
      credentials: 'same-origin',
      headers: { ...(options.body !== undefined ? { 'Content-Type': 'application/json' } : {}), ...options.headers },
      body: options.body !== undefined ? JSON.stringify(options.body) : undefined,
      signal: options.signal,
    });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw new ApiError(0, 'NETWORK', 'The server could not be reached. Check your connection and try again.');
  }
  if (!res.ok) {
    const error = await errorOf(res);
    // The session ended (signed out elsewhere, expired, account disabled), or the server refused two
    // session cookies at once and cleared both (one was planted): the app returns to sign-in.
    if ((res.status === 401 || error.code === 'SESSION_COOKIE_CONFLICT') && path !== '/auth/login' && !path.startsWith('/setup') && !path.startsWith('/invitations/')) {
      window.dispatchEvent(new CustomEvent(SESSION_ENDED, { detail: error.message }));
    }
    throw error;
  }
  if (res.status === 204) return undefined as T;
  const type = res.headers.get('content-type') ?? '';
  return (type.includes('application/json') ? await res.json() : await res.text()) as T;
}

/**
 * Asks whether the session still holds; if not, the app returns to sign-in (SESSION_ENDED). For
 * what cannot tell a 401 by itself, e.g. an EventSource that fails to connect. Asked of
 * /auth/session, which answers "nobody" without a failing request.
 */
export function checkSession(): void {
  request<SessionState>('GET', '/auth/session')
    .then((current) => {
      if (current.user === null) window.dispatchEvent(new CustomEvent(SESSION_ENDED, { detail: 'Your session has ended.' }));
    })
    .catch(() => undefined);
}

export const api = {
  get: <T>(path: string, options?: RequestOptions) => request<T>('GET', path, options),
  post: <T>(path: string, body?: unknown, options?: RequestOptions) => request<T>('POST', path, { ...options, body: body ?? {} }),
  put: <T>(path: string, body?: unknown, options?: RequestOptions) => request<T>('PUT', path, { ...options, body: body ?? {} }),
  patch: <T>(path: string, body?: unknown, options?: RequestOptions) => request<T>('PATCH', path, { ...options, body: body ?? {} }),
  delete: <T>(path: string, options?: RequestOptions) => request<T>('DELETE', path, options),
};

/** Builds `?a=1&b=x` from the defined values only. */
export function query(params: Record<string, string | number | boolean | null | undefined>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== undefined && value !== null && value !== '') search.set(key, String(value));
  const text = search.toString();
  return text ? `?${text}` : '';
}
