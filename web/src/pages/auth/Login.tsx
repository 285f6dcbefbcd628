import { useMutation } from "@tanstack/react-query";
import { useState } from "react";
import { Link, useNavigate, useSearchParams } from "react-router";
import { logIn } from "../../auth/session";
import { Button, ErrorNote, Field, Input } from "../../components/ui";
import { useT } from "../../i18n";
import { AuthLayout, onSubmit } from "./AuthLayout";

/** Only a path inside the dashboard: a `next` pointing elsewhere would be an open redirect. */
export function safeNext(next: string | null): string {
  return next && next.startsWith("/") && !next.startsWith("//") ? next : "/";
}

export default function Login() {
  const t = useT();
  const navigate = useNavigate();
  const [params] = useSearchParams();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const login = useMutation({
    mutationFn: () => logIn(email, password),
    onSuccess: () => navigate(safeNext(params.get("next")), { replace: true }),
  });
  return (
    <AuthLayout
      title={t("login.title")}
      footer={
        <>
          {t("login.noAccount")} <Link className="underline" to="/signup">{t("signup.title")}</Link>
        </>
      }
    >
      <form className="space-y-3" onSubmit={onSubmit(() => login.mutate())}>
        <Field label={t("field.email")}>
          {(id) => <Input id={id} type="email" autoComplete="email" required value={email} onChange={(e) => setEmail(e.target.value)} />}
        </Field>
        <Field label={t("field.password")}>
          {(id) => (
            <Input id={id} type="password" autoComplete="current-password" required value={password} onChange={(e) => setPassword(e.target.value)} />
          )}
        </Field>
        <ErrorNote error={login.error} />
        <Button type="submit" className="w-full" disabled={login.isPending}>
          {t("login.submit")}
        </Button>
        <p className="text-sm">
          <Link className="underline" to="/forgot-password">
            {t("login.forgot")}
          </Link>
        </p>
      </form>
    </AuthLayout>
  );
}
