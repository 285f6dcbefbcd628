import { useMutation } from "@tanstack/react-query";
import { useEffect } from "react";
import { Link, useSearchParams } from "react-router";
import { api, unwrap } from "../../api/client";
import { ErrorNote, Loading } from "../../components/ui";
import { useT } from "../../i18n";
import { AuthLayout } from "./AuthLayout";

export default function Verify() {
  const t = useT();
  const [params] = useSearchParams();
  const token = params.get("token") ?? "";
  const verify = useMutation({ mutationFn: () => unwrap(api.POST("/api/v1/auth/verify", { body: { token } })) });
  const { mutate } = verify;
  useEffect(() => mutate(), [mutate]);
  return (
    <AuthLayout title={t("verify.title")}>
      {verify.isPending || verify.isIdle ? <Loading /> : null}
      {verify.isSuccess ? <p role="status">{t("verify.done")}</p> : null}
      <ErrorNote error={verify.error} />
      <p className="mt-4 text-sm">
        <Link className="underline" to="/">
          {t("error.home")}
        </Link>
      </p>
    </AuthLayout>
  );
}
