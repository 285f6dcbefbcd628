import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useNavigate, useSearchParams } from "react-router";
import { api, unwrap } from "../../api/client";
import { chooseWorkspace } from "../../auth/session";
import { Button, Card, ErrorNote, PageHeader } from "../../components/ui";
import { useT } from "../../i18n";

export default function AcceptInvitation() {
  const t = useT();
  const navigate = useNavigate();
  const client = useQueryClient();
  const [params] = useSearchParams();
  const accept = useMutation({
    mutationFn: () => unwrap(api.POST("/api/v1/invitations/accept", { body: { token: params.get("token") ?? "" } })),
    onSuccess: async (tenant) => {
      chooseWorkspace(tenant.id);
      await client.invalidateQueries({ queryKey: ["me"] });
      navigate("/");
    },
  });
  return (
    <div className="max-w-lg">
      <PageHeader title={t("invite.acceptTitle")} />
      <Card>
        <p className="mb-3 text-sm">{t("invite.acceptHint")}</p>
        <ErrorNote error={accept.error} />
        <Button className="mt-3" disabled={accept.isPending} onClick={() => accept.mutate()}>
          {t("invite.accept")}
        </Button>
      </Card>
    </div>
  );
}
