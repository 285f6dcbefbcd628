import { useMutation } from "@tanstack/react-query";
import { useState } from "react";
import { Link, useSearchParams } from "react-router";
import { api, unwrap } from "../../api/client";
import { Button, ErrorNote, Field, Input } from "../../components/ui";
import { useT } from "../../i18n";
import { AuthLayout, onSubmit } from "./AuthLayout";

export default function ResetPassword() {
  const t = useT();
  const [params] = useSearchParams();
  const [password, setPassword] = useState("");
  const reset = useMutation({
    mutationFn: () => unwrap(api.POST("/api/v1/auth/reset-password", { body: { token: params.get("token") ?? "", password } })),
  });
  return (
    <AuthLayout title={t("reset.title")}>
      {reset.isSuccess ? (
        <p role="status">
          {t("reset.done")}{" "}
          <Link className="underline" to="/login">
            {t("login.title")}
          </Link>
        </p>
      ) : (
        <form className="space-y-3" onSubmit={onSubmit(() => reset.mutate())}>
          <Field label={t("field.newPassword")}>
            {(id) => <Input id={id} type="password" autoComplete="new-password" required value={password} onChange={(e) => setPassword(e.target.value)} />}
          </Field>
          <ErrorNote error={reset.error} />
          <Button type="submit" className="w-full" disabled={reset.isPending}>
            {t("reset.submit")}
          </Button>
        </form>
      )}
    </AuthLayout>
  );
}
