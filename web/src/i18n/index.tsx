// English and Russian UI strings: the language is the person's choice, else the browser's.
import { createContext, useCallback, useContext, useMemo, useState, type ReactNode } from "react";
import { en, ru, type MessageKey } from "./messages";

export type Lang = "en" | "ru";
const CATALOGS: Record<Lang, Record<MessageKey, string>> = { en, ru };
const LANG_KEY = "parley.lang";

export function pickLang(saved: string | null, browser: string | undefined): Lang {
  if (saved === "en" || saved === "ru") return saved;
  return browser?.toLowerCase().startsWith("ru") ? "ru" : "en";
}

export function translate(lang: Lang, key: MessageKey, vars?: Record<string, string | number>): string {
  const text = CATALOGS[lang][key];
  if (!vars) return text;
  return text.replace(/\{(\w+)\}/g, (whole, name: string) => (name in vars ? String(vars[name]) : whole));
}

type T = (key: MessageKey, vars?: Record<string, string | number>) => string;
interface I18n {
  lang: Lang;
  setLang: (lang: Lang) => void;
  t: T;
}

const I18nContext = createContext<I18n>({
  lang: "en",
  setLang: () => undefined,
  t: (key, vars) => translate("en", key, vars),
});

export function I18nProvider({ children }: { children: ReactNode }) {
  const [lang, setLangState] = useState<Lang>(() => pickLang(localStorage.getItem(LANG_KEY), navigator.language));
  const setLang = useCallback((next: Lang) => {
    localStorage.setItem(LANG_KEY, next);
    document.documentElement.lang = next;
    setLangState(next);
  }, []);
  const t = useCallback<T>((key, vars) => translate(lang, key, vars), [lang]);
  const value = useMemo(() => ({ lang, setLang, t }), [lang, setLang, t]);
  return <I18nContext.Provider value={value}>{children}</I18nContext.Provider>;
}

export function useT(): T {
  return useContext(I18nContext).t;
}

export function useLang(): I18n {
  return useContext(I18nContext);
}
