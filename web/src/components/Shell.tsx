// The signed-in frame: navigation, workspace switcher, language, and the page in the middle.
// Without a session it sends the person to log in; without a workspace, to create one.
import { useMutation } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { Navigate, NavLink, Outlet, useLocation, useNavigate } from "react-router";
import { api, unwrap } from "../api/client";
import { currentWorkspace, getAccessToken, logOut, onSessionChange, refresh } from "../auth/session";
import { useLang, useT } from "../i18n";
import type { MessageKey } from "../i18n/messages";
import { useWorkspace } from "../lib/workspace";
import { Button, ErrorNote, Loading, Select } from "./ui";

const NAV: { to: string; label: MessageKey }[] = [
  { to: "/", label: "nav.assistants" },
  { to: "/knowledge", label: "nav.knowledge" },
  { to: "/channels", label: "nav.channels" },
  { to: "/conversations", label: "nav.conversations" },
  { to: "/unanswered", label: "nav.unanswered" },
  { to: "/usage", label: "nav.usage" },
  { to: "/members", label: "nav.members" },
  { to: "/api-keys", label: "nav.apiKeys" },
  { to: "/audit", label: "nav.audit" },
];

function useSignedIn(): boolean | null {
  const [signedIn, setSignedIn] = useState<boolean | null>(getAccessToken() ? true : null);
  useEffect(() => {
    const off = onSessionChange(setSignedIn);
    // The start-up refresh may have finished between the first render and this effect.
    if (getAccessToken()) setSignedIn(true);
    else void refresh().then(setSignedIn);
    return off;
  }, []);
  return signedIn;
}

export function Shell() {
  const signedIn = useSignedIn();
  const location = useLocation();
  if (signedIn === null) return <Loading />;
  if (!signedIn) {
    const next = encodeURIComponent(location.pathname + location.search);
    return <Navigate to={`/login?next=${next}`} replace />;
  }
  return <SignedIn />;
}

function SignedIn() {
  const t = useT();
  const { lang, setLang } = useLang();
  const navigate = useNavigate();
  const location = useLocation();
  const { me, workspace, choose } = useWorkspace();
  const [menuOpen, setMenuOpen] = useState(false);
  useEffect(() => setMenuOpen(false), [location.pathname]);

  // A returning person's workspace is remembered: its pages load while the account does.
  if (!me && !currentWorkspace()) return <Loading />;
  const creating = location.pathname.startsWith("/workspaces/new") || location.pathname.startsWith("/invitations");
  if (me && !workspace && !creating) return <Navigate to="/workspaces/new" replace />;

  return (
    <div className="min-h-screen md:flex">
      <a href="#main" className="sr-only focus:not-sr-only focus:absolute focus:m-2 focus:rounded focus:bg-white focus:p-2">
        {t("nav.skip")}
      </a>
      <aside className="border-b border-slate-200 bg-white md:min-h-screen md:w-60 md:border-b-0 md:border-r">
        <div className="flex items-center justify-between p-4">
          <span className="text-lg font-bold text-indigo-700">Parley</span>
          <Button variant="ghost" className="md:hidden" aria-expanded={menuOpen} aria-controls="main-nav" onClick={() => setMenuOpen(!menuOpen)}>
            {t("nav.menu")}
          </Button>
        </div>
        <nav id="main-nav" aria-label={t("nav.label")} className={`${menuOpen ? "block" : "hidden"} px-2 pb-4 md:block`}>
          {me && workspace ? (
            <div className="mb-3 px-2">
              <label className="text-xs text-slate-500" htmlFor="workspace-switch">
                {t("nav.workspace")}
              </label>
              <Select
                id="workspace-switch"
                value={workspace.tenant_id}
                onChange={(e) => {
                  if (e.target.value === "new") navigate("/workspaces/new");
                  else {
                    choose(e.target.value);
                    navigate("/");
                  }
                }}
              >
                {me.workspaces.map((w) => (
                  <option key={w.tenant_id} value={w.tenant_id}>
                    {w.name} ({t(`role.${w.role}` as MessageKey)})
                  </option>
                ))}
                <option value="new">{t("nav.newWorkspace")}</option>
              </Select>
            </div>
          ) : null}
          <ul className="space-y-1">
            {NAV.map((item) => (
              <li key={item.to}>
                <NavLink
                  to={item.to}
                  end={item.to === "/"}
                  className={({ isActive }) =>
                    `block rounded-md px-3 py-2 text-sm ${isActive ? "bg-indigo-50 font-medium text-indigo-700" : "text-slate-700 hover:bg-slate-100"}`
                  }
                >
                  {t(item.label)}
                </NavLink>
              </li>
            ))}
          </ul>
          <div className="mt-4 space-y-2 border-t border-slate-200 px-2 pt-4 text-sm">
            <p className="truncate text-slate-500" title={me?.email}>
              {me?.email}
            </p>
            <label className="sr-only" htmlFor="lang-switch">
              {t("nav.language")}
            </label>
            <Select id="lang-switch" value={lang} onChange={(e) => setLang(e.target.value === "ru" ? "ru" : "en")}>
              <option value="en">English</option>
              <option value="ru">Русский</option>
            </Select>
            <Button variant="secondary" className="w-full" onClick={() => void logOut().then(() => navigate("/login"))}>
              {t("nav.logout")}
            </Button>
          </div>
        </nav>
      </aside>
      <main id="main" className="mx-auto w-full max-w-6xl flex-1 p-4 md:p-8">
        {me && !me.is_verified ? <VerifyBanner /> : null}
        <Outlet />
      </main>
    </div>
  );
}

function VerifyBanner() {
  const t = useT();
  const { me } = useWorkspace();
  const resend = useMutation({
    mutationFn: () => unwrap(api.POST("/api/v1/auth/verify/request", { body: { email: me?.email ?? "" } })),
  });
  return (
    <div className="mb-4 flex flex-wrap items-center gap-3 rounded-md border border-amber-200 bg-amber-50 p-3 text-sm text-amber-900">
      <span>{t("verify.banner")}</span>
      {resend.isSuccess ? (
        <span role="status">{t("verify.sent")}</span>
      ) : (
        <Button variant="secondary" disabled={resend.isPending} onClick={() => resend.mutate()}>
          {t("verify.resend")}
        </Button>
      )}
      <ErrorNote error={resend.error} />
    </div>
  );
}
