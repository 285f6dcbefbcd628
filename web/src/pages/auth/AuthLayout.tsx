import type { FormEvent, ReactNode } from "react";
import { Link } from "react-router";
import { Select } from "../../components/ui";
import { useLang } from "../../i18n";

/** The frame of the pages before login: a centred card, and the language choice. */
export function AuthLayout({ title, children, footer }: { title: string; children: ReactNode; footer?: ReactNode }) {
  const { lang, setLang, t } = useLang();
  return (
    <main className="flex min-h-screen items-center justify-center p-4">
      <div className="w-full max-w-sm space-y-4">
        <div className="flex items-center justify-between">
          <Link to="/" className="text-xl font-bold text-indigo-700">
            Parley
          </Link>
          <label className="sr-only" htmlFor="auth-lang">
            {t("nav.language")}
          </label>
          <Select id="auth-lang" className="w-auto" value={lang} onChange={(e) => setLang(e.target.value === "ru" ? "ru" : "en")}>
            <option value="en">English</option>
            <option value="ru">Русский</option>
          </Select>
        </div>
        <div className="rounded-lg border border-slate-200 bg-white p-6 shadow-sm">
          <h1 className="mb-4 text-lg font-semibold">{title}</h1>
          {children}
        </div>
        {footer ? <div className="text-center text-sm text-slate-600">{footer}</div> : null}
      </div>
    </main>
  );
}

/** A form's submit handler that never reloads the page. */
export function onSubmit(run: () => void) {
  return (event: FormEvent) => {
    event.preventDefault();
    run();
  };
}
