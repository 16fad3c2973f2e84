import { formatBytes, formatSeconds, formatUsd, share } from '../../web/src/lib/format';

test('sizes in binary units with sensible precision', () => {
  expect(formatBytes(0)).toBe('0 B');
  expect(formatBytes(1023)).toBe('1,023 B');
  expect(formatBytes(1536)).toBe('1.5 KiB');
  expect(formatBytes(3 * 1024 ** 3)).toBe('3 GiB');
  expect(formatBytes(-1)).toBe('—');
});

test('money from microdollars: cents, or finer below a cent', () => {
  expect(formatUsd(12_500_000)).toBe('$12.50');
  expect(formatUsd(17)).toBe('$0.000017');
  expect(formatUsd(1_700)).toBe('$0.0017');
  expect(formatUsd(0)).toBe('$0.00');
});

test('durations and shares', () => {
  expect(formatSeconds(45)).toBe('45 s');
  expect(formatSeconds(3 * 3600 + 5 * 60)).toBe('3 h 5 min');
  expect(share(5, 0)).toBe(0);
  expect(share(15, 10)).toBe(1);
  expect(share(5, 10)).toBe(0.5);
});
