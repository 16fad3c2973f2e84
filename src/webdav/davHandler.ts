import { Readable } from 'node:stream';
import { Router, type Request, type Response } from 'express';
import type { ApiTokenService } from '../domain/apiTokens';
import type { AuditLog } from '../domain/audit';
import { actorOf } from '../domain/authService';
import type { FileTraffic } from '../files/fileStreams';
import type { FileActor, WorkspaceFiles } from '../files/workspaceFiles';
import { parseWorkspacePath, ROOT_PATH, type WorkspacePath } from '../files/workspacePath';
import type { Clock } from '../lib/clock';
import type { DavPropertyRepository } from '../db/repositories/davPropertyRepository';
import { AppError, badRequest } from '../lib/errors';
import { originOf } from '../http/context';
import { requestedBytes, sendFileBytes } from '../http/fileDownload';
import { davAuthentication, davCaller } from './davAuth';
import { DavLocks, parseIf, parseTimeout, tokensOf, type DavLock, type IfList } from './davLocks';
import { childOf, DAV_NS, escapeXml, isDav, parseXml, propElement, readBody, serializeProperty, type XmlNode } from './davXml';

export const DAV_PREFIX = '/dav';
const XML_BODY_MAX = 1024 * 1024;
const ALLOW = 'OPTIONS, GET, HEAD, PUT, DELETE, MKCOL, COPY, MOVE, PROPFIND, PROPPATCH, LOCK, UNLOCK';

export interface DavDeps {
  files: WorkspaceFiles;
  tokens: ApiTokenService;
  properties: DavPropertyRepository;
  audit: AuditLog;
  clock: Clock;
  /** The platform's public origin: a Destination must be on it (or on the request's own host). */
  publicOrigin: string;
  /** Counts the bytes of downloads (metrics on), as the file API's are; nothing is counted without it. */
  traffic?: FileTraffic | null;
}

interface Entry {
  path: WorkspacePath;
  dir: boolean;
  size: number;
  modifiedAt: Date;
}

/** A refusal with a WebDAV precondition element (RFC 4918 §16) as its XML body. */
class DavCondition extends Error {
  constructor(
    readonly status: number,
    readonly xml: string,
  ) {
    super(xml);
  }
}

const LIVE_PROPS = ['resourcetype', 'getcontentlength', 'getlastmodified', 'creationdate', 'displayname', 'getetag', 'getcontenttype', 'supportedlock', 'lockdiscovery'];
const QUOTA_PROPS = ['quota-available-bytes', 'quota-used-bytes'];
/** Bounds on what clients may store: a property's XML, and properties per member. */
const MAX_PROPERTY_BYTES = 64 * 1024;
const MAX_PROPERTIES_PER_USER = 100_000;
const propKey = (ns: string, name: string): string => `${ns}\n${name}`;

const etagOf = (e: Pick<Entry, 'size' | 'modifiedAt'>): string => `"${e.size.toString(16)}-${e.modifiedAt.getTime().toString(16)}"`;

export function hrefOf(path: WorkspacePath, dir: boolean): string {
  const encoded = path === ROOT_PATH ? '' : path.split('/').map(encodeURIComponent).join('/');
  return `${DAV_PREFIX}/${encoded}${dir && encoded !== '' ? '/' : ''}`;
}

/** The workspace path a `/dav/…` URL path names; `..` and encoded variants (%2e%2e, %2f) refused. */
export function davPathOf(urlPath: string): WorkspacePath {
  if (urlPath !== DAV_PREFIX && !urlPath.startsWith(`${DAV_PREFIX}/`)) throw new AppError(404, 'NOT_FOUND', 'WebDAV lives under /dav/.');
  const segments = urlPath.slice(DAV_PREFIX.length).split('/');
  const decoded = segments.map((segment) => {
    let value: string;
    try {
      value = decodeURIComponent(segment);
    } catch {
      throw badRequest('INVALID_PATH', 'The path is not valid percent-encoded UTF-8.');
    }
    if (value.includes('/') || value.includes('\\')) throw badRequest('INVALID_PATH', 'A name must not contain an encoded slash.');
    return value;
  });
  return parseWorkspacePath(decoded.join('/').replace(/^\/+/, ''));
}

const parentOf = (path: WorkspacePath): WorkspacePath => (path.includes('/') ? (path.slice(0, path.lastIndexOf('/')) as WorkspacePath) : ROOT_PATH);
const nameOf = (path: WorkspacePath): string => path.slice(path.lastIndexOf('/') + 1);

/**
 * WebDAV (RFC 4918 class 1 and 2) at `/dav/`, over a member's file root through WorkspaceFiles:
 * the same streams, staging, quotas, link refusals and audit as the file API, whatever state the
 * runtime is in. The protocol layer is our own: the npm WebDAV servers (webdav-server, nephele)
 * want a file-system-like backend with random access and their own locking and property storage,
 * while ours moves bytes as tar streams through the engine and names through the file agent.
 */
export function davRouter(deps: DavDeps): Router {
  const { files, properties } = deps;
  const traffic = deps.traffic ?? null;
  const locks = new DavLocks(deps.clock);
  const router = Router();
  router.use(davAuthentication(deps.tokens));

  const who = (req: Request): FileActor => ({ actor: actorOf(davCaller(req).user), origin: originOf(req) });
  const userOf = (req: Request): string => davCaller(req).user.id;

  async function find(userId: string, path: WorkspacePath): Promise<Entry | null> {
    try {
      const st = await files.stat(userId, path);
      return { path, dir: st.type === 'dir', size: st.size, modifiedAt: st.modifiedAt };
    } catch (err) {
      if (err instanceof AppError && err.code === 'NOT_FOUND') {
        // A workspace without its folder yet is an empty one.
        return path === ROOT_PATH ? { path, dir: true, size: 0, modifiedAt: new Date(deps.clock.now()) } : null;
      }
      if (err instanceof AppError && err.code === 'NOT_A_DIRECTORY') return null;
      throw err;
    }
  }

  /** Several entries asked of the engine at the same time (each is an agent run), in the order given. */
  function findEach<const Paths extends readonly WorkspacePath[]>(userId: string, paths: Paths): Promise<{ [K in keyof Paths]: Entry | null }> {
    return Promise.all(paths.map((p) => find(userId, p))) as Promise<{ [K in keyof Paths]: Entry | null }>;
  }

  /** Evaluates the If header (412 when false) and refuses a write to a locked resource whose token was not submitted (423). */
  async function checkWrite(req: Request, path: WorkspacePath, options: { descendants: boolean; current?: Entry | null; lockTokens?: boolean }): Promise<IfList[]> {
    const userId = userOf(req);
    const header = req.get('if');
    let lists: IfList[] = [];
    if (header !== undefined) {
      const parsed = parseIf(header);
      if (!parsed) throw badRequest('INVALID_IF_HEADER', 'The If header is malformed.');
      lists = parsed;
      let any = false;
      for (const list of lists) {
        const target = list.resource === null ? path : resourcePath(list.resource, req);
        if (target === null) continue;
        const entry = target === path && options.current !== undefined ? options.current : await find(userId, target);
        const holds = list.conditions.every((c) => {
          let truth: boolean;
          if (c.token !== undefined) {
            const lock = locks.get(userId, c.token);
            truth = lock !== null && locks.affecting(userId, target, false).some((l) => l.token === lock.token);
          } else truth = entry !== null && etagOf(entry) === c.etag;
          return c.not ? !truth : truth;
        });
        if (holds) any = true;
      }
      if (!any) throw new AppError(412, 'PRECONDITION_FAILED', 'The If header does not hold for this resource.');
    }
    if (options.lockTokens === false) return lists;
    const submitted = new Set(tokensOf(lists));
    const blocking = locks.affecting(userId, path, options.descendants).filter((l) => !submitted.has(l.token));
    if (blocking[0]) {
      throw new DavCondition(423, `<D:lock-token-submitted><D:href>${escapeXml(hrefOf(blocking[0].path as WorkspacePath, false))}</D:href></D:lock-token-submitted>`);
    }
    return lists;
  }

  /** A URL (absolute or a path) on this server as a workspace path; null when it is elsewhere. */
  function resourcePath(url: string, req: Request): WorkspacePath | null {
    let parsed: URL;
    try {
      parsed = new URL(url, `${req.protocol}://${req.get('host') ?? 'localhost'}`);
    } catch {
      return null;
    }
    const hosts = new Set([new URL(deps.publicOrigin).host, req.get('host') ?? '']);
    if (!hosts.has(parsed.host)) return null;
    try {
      return davPathOf(parsed.pathname);
    } catch {
      return null;
    }
  }

  function propertyXml(entry: Entry, local: string, userLocks: DavLock[], quota: { used: number; available: number } | null): string | null {
    switch (local) {
      case 'resourcetype':
        return entry.dir ? '<D:collection/>' : '';
      case 'getcontentlength':
        return entry.dir ? null : String(entry.size);
      case 'getlastmodified':
        return entry.modifiedAt.toUTCString();
      case 'creationdate':
        return entry.modifiedAt.toISOString();
      case 'displayname':
        return escapeXml(entry.path === ROOT_PATH ? 'workspace' : nameOf(entry.path));
      case 'getetag':
        return entry.dir ? null : escapeXml(etagOf(entry));
      case 'getcontenttype':
        return entry.dir ? 'httpd/unix-directory' : 'application/octet-stream';
      case 'supportedlock':
        return ['exclusive', 'shared'].map((s) => `<D:lockentry><D:lockscope><D:${s}/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>`).join('');
      case 'lockdiscovery':
        return userLocks.filter((l) => l.path === entry.path || (l.depth === 'infinity' && (l.path === '' || entry.path.startsWith(`${l.path}/`)))).map(activeLock).join('');
      case 'quota-available-bytes':
        return quota && entry.dir ? String(quota.available) : null;
      case 'quota-used-bytes':
        return quota && entry.dir ? String(quota.used) : null;
      default:
        return null;
    }
  }

  function activeLock(lock: DavLock): string {
    return (
      `<D:activelock><D:locktype><D:write/></D:locktype><D:lockscope><D:${lock.scope}/></D:lockscope>` +
      `<D:depth>${lock.depth === 'infinity' ? 'infinity' : '0'}</D:depth>` +
      (lock.ownerXml ? `<D:owner>${lock.ownerXml}</D:owner>` : '') +
      `<D:timeout>Second-${lock.timeoutSeconds}</D:timeout>` +
      `<D:locktoken><D:href>${escapeXml(lock.token)}</D:href></D:locktoken>` +
      `<D:lockroot><D:href>${escapeXml(hrefOf(lock.path as WorkspacePath, false))}</D:href></D:lockroot></D:activelock>`
    );
  }

  function sendXml(res: Response, status: number, xml: string): void {
    const body = `<?xml version="1.0" encoding="utf-8"?>\n${xml}`;
    res.status(status);
    res.setHeader('Content-Type', 'application/xml; charset=utf-8');
    res.setHeader('Content-Length', String(Buffer.byteLength(body)));
    res.end(body);
  }

  async function xmlBody(req: Request): Promise<XmlNode | null> {
    const body = await readBody(req as AsyncIterable<Buffer>, req.get('content-length'), XML_BODY_MAX);
    return parseXml(body);
  }

  /** Depth: 0 or 1; infinity (the default) is refused, as RFC 4918 §9.1 allows, with its precondition. */
  function propfindDepth(req: Request): 0 | 1 {
    const depth = (req.get('depth') ?? 'infinity').trim().toLowerCase();
    if (depth === '0') return 0;
    if (depth === '1') return 1;
    if (depth === 'infinity') throw new DavCondition(403, '<D:propfind-finite-depth/>');
    throw badRequest('INVALID_DEPTH', 'Depth must be 0, 1 or infinity.');
  }

  const handlers: Record<string, (req: Request, res: Response, path: WorkspacePath) => Promise<void>> = {
    async OPTIONS(_req, res) {
      res.setHeader('DAV', '1, 2');
      res.setHeader('MS-Author-Via', 'DAV');
      res.setHeader('Allow', ALLOW);
      res.setHeader('Content-Length', '0');
      res.status(200).end();
    },

    async PROPFIND(req, res, path) {
      const depth = propfindDepth(req);
      const body = await xmlBody(req);
      let mode: 'allprop' | 'propname' | 'prop' = 'allprop';
      let wanted: XmlNode[] = [];
      if (body) {
        if (!isDav(body, 'propfind')) throw badRequest('INVALID_XML', 'PROPFIND takes a <D:propfind> body.');
        if (childOf(body, 'propname')) mode = 'propname';
        else if (childOf(body, 'prop')) {
          mode = 'prop';
          wanted = childOf(body, 'prop')?.children ?? [];
        } else if (!childOf(body, 'allprop')) throw badRequest('INVALID_XML', 'PROPFIND takes allprop, propname or prop.');
      }
      const userId = userOf(req);
      // The listing (and the quota, when asked for) at the same time as the entry itself: each is an
      // agent run in the engine. A listing of what turns out to be a file is dropped.
      const listing =
        depth === 1
          ? files.list(userId, path).then(
              (listed) => ({ entries: listed.entries, error: null }),
              (error: unknown) => ({ entries: [], error }),
            )
          : null;
      // Quota asked for by name: measured now (the cached figure only follows the API's own writes).
      const needsQuota = mode === 'prop' && wanted.some((p) => p.ns === DAV_NS && QUOTA_PROPS.includes(p.local));
      const measuring = needsQuota ? files.usage(userId, { fresh: true }) : Promise.resolve(null);
      // Awaited below, or dropped when the entry is missing: never an unhandled rejection.
      measuring.catch(() => undefined);
      const self = await find(userId, path);
      if (!self) throw new AppError(404, 'NOT_FOUND', 'Nothing is there.');
      const entries: Entry[] = [self];
      if (self.dir && listing) {
        const listed = await listing;
        // A workspace without its folder yet lists as empty.
        if (listed.error !== null && !(path === ROOT_PATH && listed.error instanceof AppError && listed.error.code === 'NOT_FOUND')) throw listed.error;
        for (const e of listed.entries) {
          // Links are shown as what they lead to inside the root; one leading outside (or broken) is left out.
          const type = e.type === 'symlink' ? e.targetType : e.type;
          if (type !== 'file' && type !== 'dir') continue;
          entries.push({ path: e.path as WorkspacePath, dir: type === 'dir', size: e.size, modifiedAt: new Date(e.modifiedAt) });
        }
      }
      const usage = await measuring;
      const quota = usage ? { used: usage.bytes, available: Math.max(0, usage.quotaBytes - usage.bytes) } : null;
      const userLocks = locks.affecting(userId, path, true);
      const deadByPath = properties.listWithin(userId, path);
      const responses = entries.map((entry) => {
        const found: string[] = [];
        const missing: string[] = [];
        const dead = deadByPath.get(entry.path) ?? [];
        if (mode === 'propname') {
          for (const local of LIVE_PROPS) if (propertyXml(entry, local, userLocks, null) !== null) found.push(`<D:${local}/>`);
          for (const p of dead) found.push(propElement(p.ns, p.name, null));
        } else if (mode === 'allprop') {
          for (const local of LIVE_PROPS) {
            const value = propertyXml(entry, local, userLocks, null);
            if (value !== null) found.push(propElement(DAV_NS, local, value));
          }
          for (const p of dead) found.push(p.value);
        } else {
          const deadByKey = new Map(dead.map((p) => [propKey(p.ns, p.name), p.value]));
          for (const prop of wanted) {
            const stored = deadByKey.get(propKey(prop.ns, prop.local));
            if (stored !== undefined) {
              found.push(stored);
              continue;
            }
            const value = prop.ns === DAV_NS ? propertyXml(entry, prop.local, userLocks, quota) : null;
            if (value === null) missing.push(propElement(prop.ns, prop.local, null));
            else found.push(propElement(prop.ns, prop.local, value));
          }
        }
        const stats = [found.length ? propstat(found, 200) : '', missing.length ? propstat(missing, 404) : ''].join('');
        return `<D:response><D:href>${escapeXml(hrefOf(entry.path, entry.dir))}</D:href>${stats}</D:response>`;
      });
      sendXml(res, 207, `<D:multistatus xmlns:D="DAV:">${responses.join('')}</D:multistatus>`);
    },

    async PROPPATCH(req, res, path) {
      const userId = userOf(req);
      const entry = await find(userId, path);
      if (!entry) throw new AppError(404, 'NOT_FOUND', 'Nothing is there.');
      await checkWrite(req, path, { descendants: false, current: entry });
      const body = await xmlBody(req);
      if (!body || !isDav(body, 'propertyupdate')) throw badRequest('INVALID_XML', 'PROPPATCH takes a <D:propertyupdate> body.');
      // In document order (RFC 4918 §9.2): all of it is done, or none of it.
      const updates = body.children
        .filter((c) => isDav(c, 'set') || isDav(c, 'remove'))
        .flatMap((c) => (childOf(c, 'prop')?.children ?? []).map((prop) => ({ set: isDav(c, 'set'), prop })));
      const names = updates.map((u) => propElement(u.prop.ns, u.prop.local, null));
      // Live properties are the server's own: changing one fails, and with it the whole request.
      const refused = updates.map((u) => u.prop.ns === DAV_NS && (LIVE_PROPS.includes(u.prop.local) || QUOTA_PROPS.includes(u.prop.local)));
      const values = updates.map((u) => (u.set ? serializeProperty(u.prop) : ''));
      const tooLarge = values.map((v) => Buffer.byteLength(v) > MAX_PROPERTY_BYTES);
      const full = properties.count(userId) + updates.filter((u) => u.set).length > MAX_PROPERTIES_PER_USER;
      let stats: string;
      if (refused.some(Boolean) || tooLarge.some(Boolean) || full) {
        const failed = names.filter((_, i) => refused[i] || tooLarge[i] || full);
        const dependent = names.filter((_, i) => !(refused[i] || tooLarge[i] || full));
        stats = propstat(failed, full || tooLarge.some(Boolean) ? 507 : 403) + (dependent.length ? propstat(dependent, 424) : '');
      } else {
        updates.forEach((u, i) => (u.set ? properties.set(userId, path, { ns: u.prop.ns, name: u.prop.local, value: values[i] as string }) : properties.remove(userId, path, u.prop.ns, u.prop.local)));
        stats = names.length ? propstat(names, 200) : '';
        if (updates.length > 0) {
          const actor = who(req);
          deps.audit.record({
            action: 'files.properties',
            actor: actor.actor,
            target: { type: 'files', id: userId, label: null },
            origin: actor.origin,
            detail: { path, set: updates.filter((u) => u.set).length, removed: updates.filter((u) => !u.set).length },
          });
        }
      }
      sendXml(res, 207, `<D:multistatus xmlns:D="DAV:"><D:response><D:href>${escapeXml(hrefOf(path, entry.dir))}</D:href>${stats}</D:response></D:multistatus>`);
    },

    async GET(req, res, path) {
      await download(req, res, path);
    },

    async HEAD(req, res, path) {
      await download(req, res, path);
    },

    async PUT(req, res, path) {
      if (path === ROOT_PATH) throw new AppError(405, 'METHOD_NOT_ALLOWED', 'The workspace folder itself cannot be written.');
      const userId = userOf(req);
      const declared = req.get('content-length') ?? req.get('x-expected-entity-length');
      if (declared === undefined || !/^\d{1,16}$/.test(declared)) throw new AppError(411, 'LENGTH_REQUIRED', 'Send a Content-Length with PUT.');
      const size = Number(declared);
      const [parent, current] = await findEach(userId, [parentOf(path), path]);
      if (!parent?.dir) throw new AppError(409, 'CONFLICT', 'The folder to put this in does not exist.');
      if (current?.dir) throw new AppError(405, 'METHOD_NOT_ALLOWED', 'A folder is there; PUT writes files.');
      preconditions(req, current);
      await checkWrite(req, path, { descendants: false, current });
      const upload = await files.beginUpload(who(req), userId, parentOf(path), { overwrite: true, declaredBytes: size, paths: [nameOf(path) as WorkspacePath] });
      try {
        await upload.add(nameOf(path) as WorkspacePath, size, () => req);
      } catch (err) {
        await upload.abort(err as Error);
        if (!req.complete) res.setHeader('Connection', 'close');
        throw err;
      }
      await upload.commit();
      traffic?.('in', size);
      const written = await find(userId, path);
      if (written) res.setHeader('ETag', etagOf(written));
      res.status(current ? 204 : 201).end();
    },

    async DELETE(req, res, path) {
      if (path === ROOT_PATH) throw new AppError(403, 'FORBIDDEN', 'The workspace folder itself cannot be deleted.');
      const userId = userOf(req);
      const current = await find(userId, path);
      if (!current) throw new AppError(404, 'NOT_FOUND', 'Nothing is there.');
      await checkWrite(req, path, { descendants: true, current });
      await files.remove(who(req), userId, path, true);
      locks.removeUnder(userId, path);
      properties.removeTree(userId, path);
      res.status(204).end();
    },

    async MKCOL(req, res, path) {
      const userId = userOf(req);
      const length = Number(req.get('content-length') ?? 0);
      if (length > 0 || req.get('transfer-encoding')) {
        req.resume();
        throw new AppError(415, 'UNSUPPORTED_MEDIA_TYPE', 'MKCOL takes no body.');
      }
      if (path === ROOT_PATH) throw new AppError(405, 'METHOD_NOT_ALLOWED', 'Something is there already.');
      const [current, parent] = await findEach(userId, [path, parentOf(path)]);
      if (current) throw new AppError(405, 'METHOD_NOT_ALLOWED', 'Something is there already.');
      if (!parent?.dir) throw new AppError(409, 'CONFLICT', 'The folder to create this in does not exist.');
      await checkWrite(req, path, { descendants: false, current: null });
      await files.mkdir(who(req), userId, path, false);
      res.status(201).end();
    },

    async COPY(req, res, path) {
      await copyOrMove(req, res, path, 'copy');
    },

    async MOVE(req, res, path) {
      await copyOrMove(req, res, path, 'move');
    },

    async LOCK(req, res, path) {
      const userId = userOf(req);
      const body = await xmlBody(req);
      const timeoutSeconds = parseTimeout(req.get('timeout'));
      if (!body) {
        // A refresh: the lock named in the If header, on this resource or above it.
        const lists = parseIf(req.get('if') ?? '');
        const lock = tokensOf(lists ?? [])
          .map((t) => locks.get(userId, t))
          .find((l): l is DavLock => l !== null && locks.affecting(userId, path, false).some((a) => a.token === l.token));
        if (!lock) throw new AppError(412, 'PRECONDITION_FAILED', 'Refreshing a lock needs its token in the If header.');
        locks.refresh(lock, timeoutSeconds);
        sendXml(res, 200, `<D:prop xmlns:D="DAV:"><D:lockdiscovery>${activeLock(lock)}</D:lockdiscovery></D:prop>`);
        return;
      }
      if (!isDav(body, 'lockinfo')) throw badRequest('INVALID_XML', 'LOCK takes a <D:lockinfo> body.');
      const scopeNode = childOf(body, 'lockscope');
      const scope = scopeNode && childOf(scopeNode, 'shared') ? 'shared' : scopeNode && childOf(scopeNode, 'exclusive') ? 'exclusive' : null;
      if (!scope || !childOf(body, 'locktype')) throw badRequest('INVALID_XML', 'LOCK needs a lockscope (exclusive or shared) and a locktype (write).');
      const depthHeader = (req.get('depth') ?? 'infinity').toLowerCase();
      if (depthHeader !== '0' && depthHeader !== 'infinity') throw badRequest('INVALID_DEPTH', 'A lock has depth 0 or infinity.');
      const owner = childOf(body, 'owner');
      const ownerXml = owner ? ownerInner(owner) : '';
      let current = await find(userId, path);
      // Whether a lock in the way conflicts (exclusive vs shared) is the lock table's call, below.
      if (req.get('if') !== undefined) await checkWrite(req, path, { descendants: false, current, lockTokens: false });
      const lock = locks.create({ userId, path, depth: depthHeader === 'infinity' ? 'infinity' : '0', scope, ownerXml, timeoutSeconds });
      if (!lock) throw new DavCondition(423, '<D:no-conflicting-lock/>');
      let created = false;
      if (!current) {
        // Locking an unmapped URL creates an empty file there (RFC 4918 §7.3).
        try {
          const parent = await find(userId, parentOf(path));
          if (!parent?.dir) throw new AppError(409, 'CONFLICT', 'The folder to lock this in does not exist.');
          const upload = await files.beginUpload(who(req), userId, parentOf(path), { overwrite: false, declaredBytes: 0, paths: [nameOf(path) as WorkspacePath] });
          await upload.add(nameOf(path) as WorkspacePath, 0, () => emptyStream());
          await upload.commit();
          current = await find(userId, path);
          created = true;
        } catch (err) {
          locks.remove(lock.token);
          throw err;
        }
      }
      res.setHeader('Lock-Token', `<${lock.token}>`);
      sendXml(res, created ? 201 : 200, `<D:prop xmlns:D="DAV:"><D:lockdiscovery>${activeLock(lock)}</D:lockdiscovery></D:prop>`);
    },

    async UNLOCK(req, res, path) {
      const userId = userOf(req);
      const token = /^\s*<([^>]+)>\s*$/.exec(req.get('lock-token') ?? '')?.[1];
      if (!token) throw badRequest('INVALID_LOCK_TOKEN', 'UNLOCK needs a Lock-Token header: <token>.');
      const lock = locks.get(userId, token);
      if (!lock || !locks.affecting(userId, path, false).some((l) => l.token === token)) throw new DavCondition(409, '<D:lock-token-matches-request-uri/>');
      locks.remove(token);
      res.status(204).end();
    },
  };

  function preconditions(req: Request, current: Entry | null): void {
    const ifMatch = req.get('if-match');
    const ifNoneMatch = req.get('if-none-match');
    if (ifMatch !== undefined) {
      const tags = ifMatch.split(',').map((t) => t.trim());
      if (!current || (!tags.includes('*') && !tags.includes(etagOf(current)))) throw new AppError(412, 'PRECONDITION_FAILED', 'If-Match does not hold.');
    }
    if (ifNoneMatch !== undefined && current) {
      const tags = ifNoneMatch.split(',').map((t) => t.trim());
      if (tags.includes('*') || tags.includes(etagOf(current))) throw new AppError(412, 'PRECONDITION_FAILED', 'If-None-Match does not hold: the file exists.');
    }
  }

  async function download(req: Request, res: Response, path: WorkspacePath): Promise<void> {
    const userId = userOf(req);
    const entry = await find(userId, path);
    if (!entry) throw new AppError(404, 'NOT_FOUND', 'Nothing is there.');
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Content-Security-Policy', "default-src 'none'; sandbox");
    if (entry.dir) {
      // A folder has no bytes of its own; a plain list of its names helps a person who opens it in a browser.
      const listing = path === ROOT_PATH && !(await files.list(userId, path).catch(() => null)) ? { entries: [] } : await files.list(userId, path);
      const text = listing.entries.map((e) => `${e.name}${e.type === 'dir' ? '/' : ''}\n`).join('');
      res.setHeader('Content-Type', 'text/plain; charset=utf-8');
      res.setHeader('Content-Length', String(Buffer.byteLength(text)));
      res.end(req.method === 'HEAD' ? undefined : text);
      return;
    }
    const etag = etagOf(entry);
    res.setHeader('ETag', etag);
    res.setHeader('Last-Modified', entry.modifiedAt.toUTCString());
    res.setHeader('Accept-Ranges', 'bytes');
    res.setHeader('Content-Type', 'application/octet-stream');
    if (req.get('if-none-match') === etag) {
      res.status(304).end();
      return;
    }
    if (req.method === 'HEAD') {
      res.setHeader('Content-Length', String(entry.size));
      res.status(200).end();
      return;
    }
    const opened = await files.open(userId, path);
    if (opened.kind !== 'file') {
      opened.body.destroy();
      throw new AppError(409, 'CONFLICT', 'The file became a folder meanwhile.');
    }
    // An If-Range date is one the client had from Last-Modified above: the entry's time, so that is what it must match.
    const body = requestedBytes(req, res, { size: opened.size, modifiedAt: entry.modifiedAt, body: opened.body }, etag);
    await sendFileBytes(body, res, traffic).catch(() => {
      opened.body.destroy();
      res.destroy();
    });
  }

  async function copyOrMove(req: Request, res: Response, path: WorkspacePath, kind: 'copy' | 'move'): Promise<void> {
    const userId = userOf(req);
    const destination = req.get('destination');
    if (!destination) throw badRequest('DESTINATION_REQUIRED', 'Send a Destination header.');
    const to = resourcePath(destination, req);
    if (to === null) throw new AppError(502, 'DESTINATION_ELSEWHERE', 'The Destination must be under /dav/ on this server.');
    const overwriteHeader = (req.get('overwrite') ?? 'T').trim().toUpperCase();
    if (overwriteHeader !== 'T' && overwriteHeader !== 'F') throw badRequest('INVALID_OVERWRITE', 'Overwrite must be T or F.');
    const overwrite = overwriteHeader === 'T';
    const depth = (req.get('depth') ?? 'infinity').trim().toLowerCase();
    if (kind === 'move' ? depth !== 'infinity' : depth !== '0' && depth !== 'infinity') throw badRequest('INVALID_DEPTH', kind === 'move' ? 'MOVE takes Depth: infinity.' : 'COPY takes Depth 0 or infinity.');
    if (path === ROOT_PATH || to === ROOT_PATH) throw new AppError(403, 'FORBIDDEN', 'The workspace folder itself cannot be copied, moved or replaced.');
    if (to === path) throw new AppError(403, 'FORBIDDEN', 'The source and the destination are the same.');
    const [source, parent, existing] = await findEach(userId, [path, parentOf(to), to]);
    if (!source) throw new AppError(404, 'NOT_FOUND', 'Nothing is there.');
    if (!parent?.dir) throw new AppError(409, 'CONFLICT', 'The folder of the destination does not exist.');
    if (existing && !overwrite) throw new AppError(412, 'PRECONDITION_FAILED', 'The destination exists and Overwrite is F.');
    if (kind === 'move') await checkWrite(req, path, { descendants: true, current: source });
    else await checkWrite(req, path, { descendants: false, current: source }).catch((err: unknown) => {
      // COPY reads the source: only its If header counts there, not its locks.
      if (err instanceof DavCondition) return [];
      throw err;
    });
    await checkWrite(req, to, { descendants: true, current: existing });
    if (kind === 'copy') {
      await files.copy(who(req), userId, path, to, { overwrite, shallow: depth === '0' });
      if (existing) properties.removeTree(userId, to);
      properties.copyTree(userId, path, to, depth === '0');
    } else {
      // Overwrite: T replaces what is there, folders included (RFC 4918 §9.9.3: as if deleted first).
      if (existing) await files.remove(who(req), userId, to, true);
      await files.move(who(req), userId, path, to, false);
      locks.removeUnder(userId, path);
      properties.removeTree(userId, to);
      properties.moveTree(userId, path, to);
    }
    if (existing) locks.removeUnder(userId, to);
    res.status(existing ? 204 : 201).end();
  }

  router.use(async (req, res) => {
    try {
      const handler = Object.hasOwn(handlers, req.method) ? handlers[req.method] : undefined;
      if (!handler) {
        res.setHeader('Allow', ALLOW);
        throw new AppError(405, 'METHOD_NOT_ALLOWED', `${req.method} is not a WebDAV method this server speaks.`);
      }
      // A fragment is never part of a resource's name; a client that sends one means something else (litmus: delete_fragment).
      if (req.originalUrl.includes('#')) throw badRequest('INVALID_PATH', 'A request URI must not carry a fragment (#).');
      const path = davPathOf(`${DAV_PREFIX}${req.path}`);
      await handler(req, res, path);
    } catch (err) {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      // Whatever of the body was not read would be read as the next request: close instead.
      if (!req.complete) res.setHeader('Connection', 'close');
      if (err instanceof DavCondition) {
        sendXml(res, err.status, `<D:error xmlns:D="DAV:">${err.xml}</D:error>`);
        return;
      }
      // Over quota is 507 in WebDAV (RFC 4331 §6), 413 in the file API.
      if (err instanceof AppError && (err.code === 'QUOTA_EXCEEDED' || err.code === 'NO_SPACE')) {
        sendXml(res, 507, `<D:error xmlns:D="DAV:"><D:quota-not-exceeded/></D:error>`);
        return;
      }
      throw err;
    }
  });
  return router;
}

function propstat(props: string[], status: number): string {
  const text = { 200: 'OK', 403: 'Forbidden', 404: 'Not Found', 424: 'Failed Dependency', 507: 'Insufficient Storage' }[status] ?? '';
  return `<D:propstat><D:prop>${props.join('')}</D:prop><D:status>HTTP/1.1 ${status} ${text}</D:status></D:propstat>`;
}

/** The owner as text (a href or plain words): enough for clients to show who holds a lock. */
function ownerInner(owner: XmlNode): string {
  const href = childOf(owner, 'href');
  if (href) return `<D:href>${escapeXml(href.text.trim())}</D:href>`;
  return escapeXml(owner.text.trim());
}

const emptyStream = (): Readable => Readable.from([]);
