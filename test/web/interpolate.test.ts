import { interpolate } from '../../web/src/i18n/interpolate';
import { en } from '../../web/src/i18n/en';
import { zh } from '../../web/src/i18n/zh';

test('placeholders are filled; unknown ones are left for the eye to catch', () => {
  expect(interpolate('Hello, {name}', { name: 'alice' })).toBe('Hello, alice');
  expect(interpolate('Hello, {name}', {})).toBe('Hello, {name}');
});

test('English picks one or other by the count, formatted or not', () => {
  const template = '{count} user||{count} users';
  expect(interpolate(template, { count: 1 })).toBe('1 user');
  expect(interpolate(template, { count: 0 })).toBe('0 users');
  expect(interpolate(template, { count: '1,234' })).toBe('1,234 users');
  expect(interpolate(template, { count: '1' })).toBe('1 user');
  expect(interpolate(template)).toBe('{count} users');
});

test('every plural template has exactly two forms, and Chinese needs none', () => {
  for (const [key, value] of Object.entries(en)) {
    if (value.includes('||')) expect({ key, forms: value.split('||').length }).toEqual({ key, forms: 2 });
  }
  expect(Object.entries(zh).filter(([, value]) => value.includes('||'))).toEqual([]);
});

test('the two languages use the same placeholders in every string', () => {
  const names = (text: string) => [...new Set(text.match(/\{\w+\}/g) ?? [])].sort();
  const differing = Object.keys(en).filter((key) => names(en[key as keyof typeof en]).join() !== names(zh[key as keyof typeof zh]).join());
  expect(differing).toEqual([]);
});
