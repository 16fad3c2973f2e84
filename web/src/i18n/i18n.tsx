import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';
import { en, type MessageKey } from './en';
import { interpolate } from './interpolate';
import { zh } from './zh';

export type Language = 'en' | 'zh';
export const LANGUAGES: { id: Language; label: string }[] = [
  { id: 'en', label: 'English' },
  { id: 'zh', label: '简体中文' },
];
const DICTIONARIES: Record<Language, Record<MessageKey, string>> = { en, zh };

/** The server's name of a console language (the mails a user gets are written in it). */
export const mailLanguage = (language: Language): 'en' | 'zh-CN' => (language === 'zh' ? 'zh-CN' : 'en');
const STORAGE_KEY = 'clawloops.language';

export type Translate = (key: MessageKey, params?: Record<string, string | number>) => string;

interface I18n {
  language: Language;
  setLanguage(language: Language): void;
  t: Translate;
  /** Numbers, sizes and dates in the chosen language's conventions. */
  locale: string;
}

const I18nContext = createContext<I18n | null>(null);

function initialLanguage(): Language {
  const saved = localStorage.getItem(STORAGE_KEY);
  if (saved === 'en' || saved === 'zh') return saved;
  return navigator.language.toLowerCase().startsWith('zh') ? 'zh' : 'en';
}

export function I18nProvider({ children }: { children: ReactNode }) {
  const [language, setLanguageState] = useState<Language>(initialLanguage);
  useEffect(() => {
    document.documentElement.lang = language === 'zh' ? 'zh-CN' : 'en';
  }, [language]);
  const setLanguage = useCallback((next: Language) => {
    localStorage.setItem(STORAGE_KEY, next);
    setLanguageState(next);
  }, []);
  const value = useMemo<I18n>(() => {
    const dictionary = DICTIONARIES[language];
    return {
      language,
      setLanguage,
      locale: language === 'zh' ? 'zh-CN' : 'en',
      t: (key, params) => interpolate(dictionary[key] ?? en[key] ?? key, params, language === 'zh' ? 'zh-CN' : 'en'),
    };
  }, [language, setLanguage]);
  return <I18nContext.Provider value={value}>{children}</I18nContext.Provider>;
}

export function useI18n(): I18n {
  const value = useContext(I18nContext);
  if (!value) throw new Error('useI18n outside I18nProvider');
  return value;
}
