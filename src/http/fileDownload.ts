import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Request, Response } from 'express';
import { byteRange, countingStream, type FileTraffic } from '../files/fileStreams';
import { AppError } from '../lib/errors';

/**
 * How a workspace file's bytes leave in an answer, the same for the file API
 * (/api/v1/files/download) and WebDAV (GET /dav/…): one place decides ranges and counts the bytes,
 * so a client resuming a download gets the same answer from either.
 */

/** What of an opened file a ranged answer needs: its length, its time (If-Range by date) and its bytes. */
export interface RangedFile {
  size: number;
  modifiedAt: Date;
  body: Readable;
}

/**
 * The part of `file` the request asks for, with its status and length headers set: 206 with
 * Content-Range for one satisfiable range (suffix and open-ended ones included), the whole file
 * otherwise: no Range, a unit other than bytes, an If-Range that names neither `etag` nor the file's Last-Modified date
 * (the client holds another version), several ranges, or a malformed header. A range wholly
 * outside the file is a 416 whose Content-Range gives only the file's size, the body destroyed.
 */
export function requestedBytes(req: Request, res: Response, file: RangedFile, etag: string): Readable {
  const ifRange = req.get('if-range');
  const rangeApplies = req.headers.range && (!ifRange || ifRange === etag || ifRange === file.modifiedAt.toUTCString());
  const parsed = rangeApplies ? req.range(file.size) : undefined;
  // A unit other than bytes is one we do not know: RFC 9110 §14.2 says to ignore the header.
  const ranges = Array.isArray(parsed) && parsed.type !== 'bytes' ? undefined : parsed;
  if (ranges === -1) {
    file.body.destroy();
    res.setHeader('Content-Range', `bytes */${file.size}`);
    throw new AppError(416, 'RANGE_NOT_SATISFIABLE', `The file is ${file.size} bytes; the requested range is outside it.`);
  }
  if (Array.isArray(ranges) && ranges.length === 1 && ranges[0]) {
    const { start, end } = ranges[0];
    res.status(206);
    res.setHeader('Content-Range', `bytes ${start}-${end}/${file.size}`);
    res.setHeader('Content-Length', String(end - start + 1));
    const slice = byteRange(start, end);
    // The slice ends the answer early; the rest of the file is not read.
    slice.on('end', () => file.body.destroy());
    file.body.pipe(slice);
    return slice;
  }
  res.setHeader('Content-Length', String(file.size));
  return file.body;
}

/** Sends a download, its bytes counted as they leave (as sent: a range's, a compressed archive's) when metrics are on. */
export function sendFileBytes(body: Readable, res: Response, traffic: FileTraffic | null): Promise<void> {
  return traffic ? pipeline(body, countingStream((n) => traffic('out', n)), res) : pipeline(body, res);
}
