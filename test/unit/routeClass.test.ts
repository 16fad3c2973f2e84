import { ROUTE_CLASSES, routeClassOf } from '../../src/http/routeClass';

describe('routeClassOf', () => {
  test.each([
    ['/llm/v1/chat/completions', 'gateway'],
    ['/llm/v1', 'gateway'],
    ['/llm/v10/x', 'static'],
    ['/api/v1/auth/login', 'api'],
    ['/api/v1/runtime/start', 'api'],
    ['/api/v1/runtime/events', 'stream'],
    ['/api/v1/runtime/logs?follow=1', 'stream'],
    ['/api/v1/admin/users/8d0f/runtime/events', 'stream'],
    ['/api/v1/admin/users/8d0f/runtime/start', 'admin_api'],
    ['/api/v1/admin/runtimes', 'admin_api'],
    ['/api/v1/admin', 'admin_api'],
    ['/api/v1/administrators', 'api'],
    ['/api/v1/files/download?path=a.txt', 'files'],
    ['/api/v1/files', 'files'],
    ['/api/v1/admin/users/8d0f/files/export', 'files'],
    ['/dav/', 'files'],
    ['/dav/some/file.txt', 'files'],
    ['/api/v1/filesystem', 'api'],
    ['/healthz', 'health'],
    ['/readyz?x=1', 'health'],
    ['/metrics', 'metrics'],
    ['/_clawloops/forward-auth', 'forward_auth'],
    ['/_clawloops/open?token=x', 'workspace'],
    ['/w/alice/_clawloops/status', 'workspace'],
    ['/', 'static'],
    ['/assets/index-abc123.js', 'static'],
    ['/invite/some-secret', 'static'],
  ])('%s is %s', (url, expected) => {
    expect(routeClassOf(url)).toBe(expected);
  });

  test('any path at all falls into the fixed set (no path becomes a label)', () => {
    const odd = ['', '?', '//', '/api', '/api/', '/api/v2/x', '/%00', `/${'a'.repeat(10_000)}`, '/api/v1/admin/users//files'];
    for (const url of odd) expect(ROUTE_CLASSES).toContain(routeClassOf(url));
  });
});
