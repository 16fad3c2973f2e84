/**
 * The console's sentence for who or what stopped a runtime (web/src/lib/stopReason.ts), in both
 * languages, with the reader's own stop told apart from an administrator looking at it.
 */
import type { StoppedBy } from '../../web/src/api/types';
import type { MessageKey } from '../../web/src/i18n/en';
import { en } from '../../web/src/i18n/en';
import { zh } from '../../web/src/i18n/zh';
import { interpolate } from '../../web/src/i18n/interpolate';
import { formatDateTime } from '../../web/src/lib/format';
import { stopReasonText } from '../../web/src/lib/stopReason';

const AT = '2026-12-06T14:02:00.000Z';
const translator = (messages: Record<MessageKey, string>) => (key: MessageKey, params?: Record<string, string | number>) => interpolate(messages[key], params);
const t = translator(en);
const stop = (cause: StoppedBy['cause'], extra: Partial<StoppedBy> = {}): StoppedBy => ({ cause, at: AT, detail: null, idleMinutes: null, ...extra });
const time = formatDateTime(AT, 'en');

test('each cause says who or what stopped it, and when in the reader\'s time', () => {
  expect(stopReasonText(t, stop('idle', { idleMinutes: 30 }), 'en', true)).toBe(`Stopped on ${time} after 30 min without activity.`);
  expect(stopReasonText(t, stop('admin'), 'en', true)).toBe(`Stopped by an administrator on ${time}.`);
  expect(stopReasonText(t, stop('out_of_memory', { detail: 'out of memory (limit 2 GiB)' }), 'en', true)).toBe(`Stopped by the platform on ${time}: it ran out of memory.`);
  expect(stopReasonText(t, stop('crash_loop'), 'en', true)).toBe(`Stopped by the platform on ${time}: it kept crashing.`);
  expect(stopReasonText(t, stop('account_disabled'), 'en', false)).toBe(`Stopped on ${time} because the account was disabled.`);
  expect(stopReasonText(t, stop('system'), 'en', true)).toBe(`Stopped by the platform on ${time}.`);
  expect(stopReasonText(t, stop('idle'), 'en', true)).toBe(`Stopped by the platform on ${time}.`);
});

test('the member\'s own stop reads "you" only to the member', () => {
  expect(stopReasonText(t, stop('member'), 'en', true)).toBe(`You stopped it on ${time}.`);
  expect(stopReasonText(t, stop('member'), 'en', false)).toBe(`Stopped from the console on ${time}.`);
});

test('in Chinese, with the minutes and the time filled in', () => {
  const text = stopReasonText(translator(zh), stop('idle', { idleMinutes: 45 }), 'zh', true);
  expect(text).toBe(`因 45 分钟无活动，已于 ${formatDateTime(AT, 'zh')} 自动停止。`);
});

test("an administrator's own list names the administrator who stopped it; without the name it stays neutral", () => {
  expect(stopReasonText(t, stop('admin'), 'en', false, 'root-admin')).toBe(`Stopped by the administrator root-admin on ${time}.`);
  expect(stopReasonText(translator(zh), stop('admin'), 'zh', false, 'root-admin')).toBe(`已于 ${formatDateTime(AT, 'zh')} 被管理员 root-admin 停止。`);
  // A name is only ever put to an administrator's stop.
  expect(stopReasonText(t, stop('member'), 'en', false, 'root-admin')).toBe(`Stopped from the console on ${time}.`);
});
