import { isRouteErrorResponse, useRouteError } from "react-router";
import { useT } from "../i18n";

/** A page that failed to load or render: says so, instead of a blank screen. */
export function RouteError() {
  const t = useT();
  const error = useRouteError();
  const message = isRouteErrorResponse(error)
    ? `${error.status} ${error.statusText}`
    : error instanceof Error
      ? error.message
      : t("error.unknown");
  return (
    <div role="alert" className="m-8 rounded-md border border-red-200 bg-red-50 p-4 text-red-800">
      <h1 className="font-semibold">{t("error.page")}</h1>
      <p className="mt-1 text-sm">{message}</p>
      <a className="mt-3 inline-block text-sm underline" href="/app/">
        {t("error.home")}
      </a>
    </div>
  );
}
