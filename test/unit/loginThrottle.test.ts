/**
 * The login throttle's bookkeeping on its own: what an admitted attempt counts, what settling it
 * does, and the memory bound under a flood of distinct usernames.
 */
import { DEFAULT_LOGIN_THROTTLE, LoginThrottle, type Admission, type ThrottledAttempt } from '../../src/domain/loginThrottle';
import { ManualClock } from '../support/harness';

let clock: ManualClock;
let throttle: LoginThrottle;

beforeEach(() => {
  clock = new ManualClock();
  throttle = new LoginThrottle(clock);
});

function admitted(admission: Admission): ThrottledAttempt {
  if (!admission.allowed) throw new Error(`refused for ${admission.retryAfterMs} ms`);
  return admission.attempt;
}

test('an attempt whose password was never checked (abandoned) does not count as a failure', () => {
  const attempts = Array.from({ length: 5 }, () => admitted(throttle.admitLogin('alice', '192.0.2.1')));
  expect(throttle.admitLogin('alice', '192.0.2.1').allowed).toBe(false);
  attempts.forEach((attempt) => attempt.abandoned());
  // The whole allowance is back: five more real failures before the lock.
  for (let i = 0; i < 5; i++) admitted(throttle.admitLogin('alice', '192.0.2.1')).failed();
  const refused = throttle.admitLogin('alice', '192.0.2.1');
  expect(refused).toEqual({ allowed: false, retryAfterMs: 30_000, lockedBy: 'account' });
});

test('an attempt settles once: settling it again changes nothing', () => {
  const attempt = admitted(throttle.admitLogin('alice', null));
  attempt.failed();
  attempt.failed();
  attempt.abandoned();
  for (let i = 0; i < 4; i++) admitted(throttle.admitLogin('alice', null)).failed();
  expect(throttle.admitLogin('alice', null).allowed).toBe(false);
});

test('a success clears the account but not the address, and keeps the attempts still in flight counted', () => {
  const ip = '192.0.2.1';
  for (let i = 0; i < 3; i++) admitted(throttle.admitLogin(`other-${i}`, ip)).failed();
  const inFlight = Array.from({ length: 4 }, () => admitted(throttle.admitLogin('alice', ip)));
  admitted(throttle.admitLogin('alice', ip)).succeeded();
  // Four still count against alice's five.
  admitted(throttle.admitLogin('alice', ip));
  expect(throttle.admitLogin('alice', ip).allowed).toBe(false);
  inFlight.forEach((attempt) => attempt.failed());
  // The address kept its three earlier failures: with the four just settled, twelve more and the one in flight it is full.
  for (let i = 0; i < 12; i++) admitted(throttle.admitLogin(`more-${i}`, ip)).failed();
  expect(throttle.admitLogin('someone-new', ip)).toMatchObject({ allowed: false, lockedBy: 'address' });
});

test('after a lockout expires one attempt at a time is admitted, as sequential ones would be', () => {
  for (let i = 0; i < 5; i++) admitted(throttle.admitLogin('alice', null)).failed();
  clock.advance(30_000);
  const one = admitted(throttle.admitLogin('alice', null));
  // What the next would wait if the one in flight fails: the doubled lockout.
  expect(throttle.admitLogin('alice', null)).toEqual({ allowed: false, retryAfterMs: 60_000, lockedBy: 'account' });
  one.failed();
  expect(throttle.admitLogin('alice', null)).toEqual({ allowed: false, retryAfterMs: 60_000, lockedBy: 'account' });
});

test('password changes have their own key: a login flood against the username does not lock its owner out of changing it', () => {
  for (let i = 0; i < 50; i++) {
    const admission = throttle.admitLogin('alice', `192.0.2.${i}`);
    if (admission.allowed) admission.attempt.failed();
  }
  expect(throttle.admitLogin('alice', '192.0.2.200').allowed).toBe(false);
  expect(throttle.admitPasswordChange('alice-id').allowed).toBe(true);
});

test('a flood of distinct usernames keeps memory bounded, and a locked account under attack stays locked', () => {
  throttle = new LoginThrottle(clock, { ...DEFAULT_LOGIN_THROTTLE, maxTrackedKeys: 100 });
  for (let i = 0; i < 5; i++) admitted(throttle.admitLogin('victim', null)).failed();
  for (let i = 0; i < 10_000; i++) {
    const admission = throttle.admitLogin(`random-${i}`, null);
    if (admission.allowed) admission.attempt.failed();
    // The attacker keeps trying the victim too: that keeps its record fresh.
    if (i % 50 === 0) expect(throttle.admitLogin('victim', null).allowed).toBe(false);
    expect(throttle.trackedKeys).toBeLessThanOrEqual(100);
  }
  expect(throttle.admitLogin('victim', null).allowed).toBe(false);
});

test('a key is forgotten an hour after its last failure', () => {
  for (let i = 0; i < 5; i++) admitted(throttle.admitLogin('alice', null)).failed();
  clock.advance(60 * 60_000);
  for (let i = 0; i < 5; i++) admitted(throttle.admitLogin('alice', null)).failed();
  expect(throttle.admitLogin('alice', null)).toMatchObject({ retryAfterMs: 30_000 });
});
