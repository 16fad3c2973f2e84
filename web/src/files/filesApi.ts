import { API, ApiError, query, SESSION_ENDED } from '../api/client';
import type { FileEntry, TextFile } from '../api/types';
import { fileBytesSent, multipartLayout, type BatchResult, type TransferError, type UploadTransport } from '../lib/uploadQueue';

/** Workspace paths: '' is the workspace itself, `a/b` a path inside it. */
export const parentOf = (path: string): string => (path.includes('/') ? path.slice(0, path.lastIndexOf('/')) : '');
export const nameOf = (path: string): string => path.slice(path.lastIndexOf('/') + 1);
export const segmentsOf = (path: string): string[] => path.split('/').filter((s) => s !== '');

/** The page's own address for a folder. */
export const folderUrl = (path: string): string => `/files${query({ path })}`;
export const downloadUrl = (path: string, inline = false): string => `${API}/files/download${query({ path, inline: inline ? 1 : undefined })}`;

export const isFolder = (entry: FileEntry): boolean => entry.type === 'dir' || (entry.type === 'symlink' && entry.targetType === 'dir');
/** The types the server shows inline (and a browser can show in an <img>). */
export const isImage = (entry: FileEntry): boolean => !isFolder(entry) && /\.(png|jpe?g|gif|webp|avif|bmp)$/i.test(entry.name);

/** The server's error object, whole: its extra fields (`etag`, `conflicts`, `limitBytes`) included. */
function parseError(status: number, statusText: string, text: string): { code: string; message: string; details: Record<string, unknown> } {
  try {
    const parsed = JSON.parse(text) as { error?: Record<string, unknown> };
    if (parsed.error && typeof parsed.error.message === 'string') {
      const { code, message, ...details } = parsed.error;
      return { code: typeof code === 'string' ? code : 'ERROR', message: message as string, details };
    }
  } catch {
    // not JSON
  }
  return { code: `HTTP_${status}`, message: `The server answered ${status} ${statusText}.`, details: {} };
}

function sessionEnded(status: number, message: string): void {
  if (status === 401) window.dispatchEvent(new CustomEvent(SESSION_ENDED, { detail: message }));
}

export function loadText(path: string, signal?: AbortSignal): Promise<TextFile> {
  return fetchJson<TextFile>('GET', `/files/text${query({ path })}`, { signal });
}

/**
 * Saves a text file if it is still the version `etag` names (null: only if it does not exist).
 * A 412 is an ApiError whose details hold the current `etag`.
 */
export function saveText(path: string, content: string, etag: string | null): Promise<{ path: string; etag: string; size: number }> {
  return fetchJson('PUT', `/files/text${query({ path })}`, {
    body: content,
    headers: { 'Content-Type': 'text/plain; charset=utf-8', ...(etag === null ? { 'If-None-Match': '*' } : { 'If-Match': etag }) },
  });
}

async function fetchJson<T>(method: 'GET' | 'PUT', path: string, options: { body?: string; headers?: Record<string, string>; signal?: AbortSignal }): Promise<T> {
  let res: Response;
  try {
    res = await fetch(API + path, { method, credentials: 'same-origin', body: options.body, headers: options.headers, signal: options.signal, cache: 'no-store' });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw new ApiError(0, 'NETWORK', 'The server could not be reached. Check your connection and try again.');
  }
  if (!res.ok) {
    const error = parseError(res.status, res.statusText, await res.text().catch(() => ''));
    const etag = res.headers.get('etag');
    sessionEnded(res.status, error.message);
    throw new ApiError(res.status, error.code, error.message, etag && error.details.etag === undefined ? { ...error.details, etag } : error.details);
  }
  return (await res.json()) as T;
}

/** The details of an ApiError as an object (empty when there are none). */
export function detailsOf(error: unknown): Record<string, unknown> {
  return error instanceof ApiError && typeof error.details === 'object' && error.details !== null ? (error.details as Record<string, unknown>) : {};
}

const failure = (status: number, code: string, message: string, details: Record<string, unknown> = {}): BatchResult => ({
  ok: false,
  error: { status, code, message, details } satisfies TransferError,
});

/** Uploads through XMLHttpRequest: fetch cannot tell how much of a request body was sent. */
export function xhrTransport(): UploadTransport<File> {
  return {
    send(batch, onProgress) {
      const boundary = `----clawloops${Math.random().toString(36).slice(2)}${Date.now().toString(36)}`;
      const layout = multipartLayout(batch, boundary);
      const body = new Blob(layout.parts as BlobPart[], { type: layout.contentType });
      const xhr = new XMLHttpRequest();
      const done = new Promise<BatchResult>((resolve) => {
        xhr.upload.onprogress = (event) => onProgress(fileBytesSent(layout, event.loaded));
        xhr.onload = () => {
          if (xhr.status >= 200 && xhr.status < 300) return resolve({ ok: true });
          const error = parseError(xhr.status, xhr.statusText, xhr.responseText);
          sessionEnded(xhr.status, error.message);
          resolve(failure(xhr.status, error.code, error.message, error.details));
        };
        xhr.onerror = () => resolve(failure(0, 'NETWORK', 'The connection to the server was lost during the upload.'));
        xhr.ontimeout = () => resolve(failure(0, 'TIMEOUT', 'The upload took too long.'));
        xhr.onabort = () => resolve(failure(0, 'ABORTED', 'The upload was cancelled.'));
      });
      xhr.open('POST', `${API}/files/upload${query({ path: batch.dir, overwrite: batch.overwrite ? 1 : undefined })}`);
      xhr.setRequestHeader('Content-Type', layout.contentType);
      xhr.send(body);
      return { abort: () => xhr.abort(), done };
    },
  };
}
