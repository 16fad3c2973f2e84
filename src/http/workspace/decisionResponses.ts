import type { IncomingMessage, ServerResponse } from 'node:http';
import type { GateDecision, WorkspaceCookie } from '../../domain/workspaceGatekeeper';
import { sendMessagePage } from './pages';

type Refusal = Exclude<GateDecision, { kind: 'platform' } | { kind: 'allow' }>;

/** A page load a person sees (as opposed to a script's request or a WebSocket). */
export function isNavigation(method: string | undefined, accept: string | undefined, upgrade: string | undefined): boolean {
  return (method === 'GET' || method === 'HEAD') && !upgrade && (accept ?? '').includes('text/html');
}

export function serializeWorkspaceCookie(cookie: WorkspaceCookie): string {
  return [
    `${cookie.name}=${cookie.value}`,
    `Path=${cookie.path}`,
    `Max-Age=${Math.floor(cookie.maxAgeMs / 1000)}`,
    'HttpOnly',
    'SameSite=Lax',
    ...(cookie.secure ? ['Secure'] : []),
  ].join('; ');
}

/** `{"error":{"code","message"}}` on a plain node:http response (the workspace front door has no Express). */
export function sendJsonError(res: ServerResponse, status: number, code: string, message: string): void {
  const body = Buffer.from(JSON.stringify({ error: { code, message } }));
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', body.length);
  res.setHeader('Cache-Control', 'no-store');
  res.end(body);
}

/**
 * Writes every decision that keeps a request away from the runtime. Both front doors use it,
 * so a browser sees the same redirect, cookie or page whether Traefik or the built-in router
 * stands in front.
 */
export function sendRefusal(req: IncomingMessage, res: ServerResponse, decision: Refusal): void {
  const navigation = isNavigation(req.method, req.headers.accept, req.headers.upgrade);
  switch (decision.kind) {
    case 'redeemed':
    case 'sign-in':
      res.statusCode = 302;
      res.setHeader('Set-Cookie', decision.cookies.map(serializeWorkspaceCookie));
      res.setHeader('Location', decision.location);
      res.setHeader('Cache-Control', 'no-store');
      res.setHeader('Referrer-Policy', 'no-referrer');
      res.end();
      return;
    case 'invalid':
      if (!navigation) return sendJsonError(res, decision.status, decision.code, decision.message);
      return sendMessagePage(res, decision.status, { title: 'No such workspace', message: decision.message });
    case 'denied':
      if (!navigation) return sendJsonError(res, decision.status, decision.code, decision.message);
      return sendMessagePage(res, decision.status, {
        title: decision.status === 401 ? 'Sign-in required' : 'Access refused',
        message: decision.message,
        link: decision.retryUrl ? { href: decision.retryUrl, label: 'Open your workspace' } : undefined,
      });
  }
}

/** An HTTP answer on a socket whose request asked for a WebSocket upgrade that will not happen. */
export function refuseUpgrade(socket: { write(data: string): unknown; destroy(): void }, status: number, code: string, message: string): void {
  const body = JSON.stringify({ error: { code, message } });
  const reason = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 502: 'Bad Gateway', 503: 'Service Unavailable' }[status] ?? 'Error';
  socket.write(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
  socket.destroy();
}
