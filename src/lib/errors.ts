/**
 * The one error type domain code throws for anything a caller did wrong or asked for in vain.
 * The HTTP layer renders it as `{"error":{"code","message"}}` with `status`; anything else that
 * escapes is a bug and is answered with a generic 500 so no internals leak.
 */
export class AppError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Readonly<Record<string, string>> = {},
    /** Extra fields of the error object, e.g. the names that conflicted. */
    readonly details: Readonly<Record<string, unknown>> = {},
  ) {
    super(message);
    this.name = 'AppError';
  }
}

export const badRequest = (code: string, message: string): AppError => new AppError(400, code, message);
export const unauthorized = (code: string, message: string): AppError => new AppError(401, code, message);
export const forbidden = (code: string, message: string): AppError => new AppError(403, code, message);
export const notFound = (code: string, message: string): AppError => new AppError(404, code, message);
export const conflict = (code: string, message: string): AppError => new AppError(409, code, message);
export const gone = (code: string, message: string): AppError => new AppError(410, code, message);
