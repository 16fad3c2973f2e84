import { PendingSignIns } from '../../src/oidc/pendingSignIns';
import { freeUsername, usernameFromClaim } from '../../src/oidc/usernames';
import { ManualClock } from '../support/harness';

describe('usernames from a provider\'s claims', () => {
  test.each([
    ['alice', 'alice'],
    ['Alice.Liddell', 'alice-liddell'],
    ['Zoë Müller', 'zoe-muller'],
    ['alice@example.com', 'alice'],
    ['--x--', null],
    ['张伟', null],
    ['a'.repeat(40), 'a'.repeat(31)],
    [`${'a'.repeat(30)}-b`, 'a'.repeat(30)],
  ])('%s → %s', (claim, username) => {
    expect(usernameFromClaim(claim)).toBe(username);
  });

  test('taken names get a number, and stay within the rules', () => {
    const taken = new Set(['alice', 'alice-2', 'a'.repeat(31)]);
    expect(freeUsername('alice', (n) => taken.has(n))).toBe('alice-3');
    expect(freeUsername('bob', (n) => taken.has(n))).toBe('bob');
    expect(freeUsername('a'.repeat(31), (n) => taken.has(n))).toBe(`${'a'.repeat(29)}-2`);
  });
});

describe('sign-ins in progress', () => {
  const tx = { state: 's', nonce: 'n', codeVerifier: 'v' };

  test('each is taken once, by the browser holding its secret, within its time', () => {
    const clock = new ManualClock();
    const pending = new PendingSignIns(clock, { ttlMs: 60_000, maxPending: 10 });
    const secret = pending.add(tx, '/next') as string;
    expect(pending.take('x'.repeat(43))).toBeNull();
    expect(pending.take(secret)).toEqual({ transaction: tx, returnTo: '/next', startedAt: clock.now() });
    expect(pending.take(secret)).toBeNull();
    const late = pending.add(tx, null) as string;
    clock.advance(60_000);
    expect(pending.take(late)).toBeNull();
  });

  test('a flood of starts is capped; expired ones make room', () => {
    const clock = new ManualClock();
    const pending = new PendingSignIns(clock, { ttlMs: 60_000, maxPending: 3 });
    for (let i = 0; i < 3; i++) expect(pending.add(tx, null)).not.toBeNull();
    expect(pending.add(tx, null)).toBeNull();
    clock.advance(60_000);
    expect(pending.add(tx, null)).not.toBeNull();
    expect(pending.size).toBe(1);
  });
});
