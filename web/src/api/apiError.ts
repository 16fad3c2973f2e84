/**
 * A failed API call: the server's `{error: {code, message}}` (and whatever else the error carries,
 * as `details`), or a code of our own when it never answered (NETWORK, HTTP_<status>). On its
 * own, free of the browser, so pure modules and their tests under Node can tell errors apart;
 * api/client.ts exports it with the rest.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: unknown = null,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}
