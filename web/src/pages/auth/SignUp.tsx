import { useMutation } from "@tanstack/react-query";
import { useState } from "react";
import { Link, useNavigate } from "react-router";
import { api, unwrap } from "../../api/client";
import { logIn } from "../../auth/session";
import { Button, ErrorNote, Field, Input } from "../../components/ui";
import { useT } from "../../i18n";
import { AuthLayout, onSubmit } from "./AuthLayout";

export default function SignUp() {
  const t = useT();
  const navigate = useNavigate();
  const [fullName, setFullName] = useState("");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const signUp = useMutation({
    mutationFn: async () => {
      await unwrap(api.POST("/api/v1/auth/register", { body: { email, password, full_name: fullName || null } }));
      await logIn(email, password);
    },
    onSuccess: () => navigate("/workspaces/new", { replace: true }),
  });
  return (
    <AuthLayout
      title={t("signup.title")}
      footer={
        <>
          {t("signup.haveAccount")} <Link className="underline" to="/login">{t("login.title")}</Link>
        </>
      }
    >
      <form className="space-y-3" onSubmit={onSubmit(() => signUp.mutate())}>
        <Field label={t("field.fullName")}>
          {(id) => <Input id={id} autoComplete="name" value={fullName} onChange={(e) => setFullName(e.target.value)} />}
        </Field>
        <Field label={t("field.email")}>
          {(id) => <Input id={id} type="email" autoComplete="email" required value={email} onChange={(e) => setEmail(e.target.value)} />}
        </Field>
        <Field label={t("field.password")} hint={t("signup.passwordHint")}>
          {(id) => (
            <Input id={id} type="password" autoComplete="new-password" required minLength={8} value={password} onChange={(e) => setPassword(e.target.value)} />
          )}
        </Field>
        <ErrorNote error={signUp.error} />
        <Button type="submit" className="w-full" disabled={signUp.isPending}>
          {t("signup.submit")}
        </Button>
      </form>
    </AuthLayout>
  );
}
