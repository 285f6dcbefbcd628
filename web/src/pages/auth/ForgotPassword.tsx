import { useMutation } from "@tanstack/react-query";
import { useState } from "react";
import { Link } from "react-router";
import { api, unwrap } from "../../api/client";
import { Button, ErrorNote, Field, Input } from "../../components/ui";
import { useT } from "../../i18n";
import { AuthLayout, onSubmit } from "./AuthLayout";

export default function ForgotPassword() {
  const t = useT();
  const [email, setEmail] = useState("");
  const forgot = useMutation({ mutationFn: () => unwrap(api.POST("/api/v1/auth/forgot-password", { body: { email } })) });
  return (
    <AuthLayout title={t("forgot.title")} footer={<Link className="underline" to="/login">{t("login.title")}</Link>}>
      {forgot.isSuccess ? (
        <p role="status">{t("forgot.sent")}</p>
      ) : (
        <form className="space-y-3" onSubmit={onSubmit(() => forgot.mutate())}>
          <Field label={t("field.email")}>
            {(id) => <Input id={id} type="email" required value={email} onChange={(e) => setEmail(e.target.value)} />}
          </Field>
          <ErrorNote error={forgot.error} />
          <Button type="submit" className="w-full" disabled={forgot.isPending}>
            {t("forgot.submit")}
          </Button>
        </form>
      )}
    </AuthLayout>
  );
}
