import { scopesAdmitting } from '../../src/http/middleware/apiTokenAuth';

describe('which scope a token needs (paths under /api/v1)', () => {
  test.each([
    ['GET', '/runtime', ['read', 'runtime']],
    ['GET', '/runtime/logs', ['read', 'runtime']],
    ['POST', '/runtime/start', ['runtime']],
    ['DELETE', '/runtime', ['runtime']],
    ['HEAD', '/files/download', ['read', 'files']],
    ['PUT', '/files/text', ['files']],
    ['POST', '/Files/upload', ['files']],
    ['GET', '/usage', ['read']],
    ['GET', '/models', ['read']],
    ['GET', '/egress', ['read']],
    ['GET', '/admin/users', ['admin']],
    ['GET', '/ADMIN/users', ['admin']],
    ['POST', '/admin/users/x/runtime/start', ['admin']],
    ['GET', '/auth/me', 'any'],
  ] as const)('%s %s → %j', (method, path, expected) => {
    expect(scopesAdmitting(method, path)).toEqual(expected);
  });

  test.each([
    ['POST', '/usage'],
    ['PUT', '/egress'],
    ['GET', '/account/tokens'],
    ['POST', '/account/password'],
    ['GET', '/account/sessions'],
    ['POST', '/auth/logout'],
    ['POST', '/auth/login'],
    ['GET', '/auth/session'],
    ['GET', '/setup'],
    ['POST', '/invitations/abc/accept'],
    ['GET', '/runtimes'],
    ['GET', '/filesystem'],
    ['GET', '/%61dmin/users'],
    ['GET', '/'],
  ])('%s %s is not for tokens', (method, path) => {
    expect(scopesAdmitting(method, path)).toBeNull();
  });
});
