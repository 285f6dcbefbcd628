import type { ReactNode } from "react";
import { Link } from "react-router";
import { useT } from "../i18n";

export default function NotFound() {
  const t = useT();
  return <NotFoundNote message={t("notFound.page")} />;
}

/** What a page shows for an id that is not in this workspace (or not anywhere). */
export function NotFoundNote({ message, back }: { message: string; back?: ReactNode }) {
  const t = useT();
  return (
    <div role="alert" className="rounded-lg border border-slate-200 bg-white p-6">
      <h1 className="text-lg font-semibold">{t("notFound.title")}</h1>
      <p className="mt-1 text-sm text-slate-600">{message}</p>
      <p className="mt-3 text-sm">
        {back ?? (
          <Link className="underline" to="/">
            {t("error.home")}
          </Link>
        )}
      </p>
    </div>
  );
}
