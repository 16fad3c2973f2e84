import { z } from 'zod';
import { AppError } from '../lib/errors';

export function formatIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 10)
    .map((issue) => {
      const where = issue.path.length > 0 ? issue.path.join('.') : 'body';
      return `${where}: ${issue.message}`;
    })
    .join('; ');
}

/** Validates untrusted input; a failure is a 400 that names every bad field. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown, what = 'body'): z.output<S> {
  const result = schema.safeParse(input);
  if (!result.success) {
    throw new AppError(400, 'VALIDATION_FAILED', `Invalid request ${what}: ${formatIssues(result.error)}`);
  }
  return result.data;
}

/** Body schemas reject unknown keys so a misspelled field is reported instead of ignored. */
export const body = <T extends z.ZodRawShape>(shape: T) => z.strictObject(shape);

export const pagination = {
  limit: z.coerce.number().int().min(1).max(200).default(50),
  offset: z.coerce.number().int().min(0).max(1_000_000).default(0),
};

export const usernameField = z.string().min(1, 'required').max(64);
export const passwordField = z.string().min(1, 'required').max(1024);
export const displayNameField = z.string().max(200);
export const emailField = z.email('must be an email address').max(254);
export const roleField = z.enum(['admin', 'member']);
export const statusField = z.enum(['active', 'disabled']);
export const idParam = z.uuid('must be an id');
