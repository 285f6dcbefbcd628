import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { Link, useNavigate } from "react-router";
import { api, unwrap } from "../../api/client";
import { Badge, Button, Card, Empty, ErrorNote, Field, Input, Loading, PageHeader } from "../../components/ui";
import { useLang } from "../../i18n";
import { formatDate } from "../../lib/format";
import { LoadMore, usePaged } from "../../lib/paged";
import { canManage } from "../../lib/permissions";
import { useWorkspace } from "../../lib/workspace";
import { onSubmit } from "../auth/AuthLayout";

export function useAssistants() {
  return usePaged(["assistants"], (cursor) => unwrap(api.GET("/api/v1/assistants", { params: { query: { cursor } } })));
}

export default function AssistantList() {
  const { t, lang } = useLang();
  const { role } = useWorkspace();
  const assistants = useAssistants();
  return (
    <div className="space-y-4">
      <PageHeader title={t("assistants.title")} />
      {canManage(role) ? <NewAssistant /> : null}
      <Card title={t("assistants.list")}>
        {assistants.isPending ? <Loading /> : null}
        <ErrorNote error={assistants.error} />
        {assistants.isSuccess && assistants.items.length === 0 ? <Empty>{t("assistants.empty")}</Empty> : null}
        <ul className="divide-y divide-slate-100">
          {assistants.items.map((a) => (
            <li key={a.id} className="flex flex-wrap items-center justify-between gap-2 py-3">
              <div>
                <Link className="font-medium text-indigo-700 hover:underline" to={`/assistants/${a.id}`}>
                  {a.name}
                </Link>
                <p className="text-xs text-slate-500">
                  {t("assistants.updated", { date: formatDate(a.updated_at, lang) })} ·{" "}
                  {t("assistants.kbCount", { n: a.knowledge_base_ids.length })}
                </p>
              </div>
              <Badge tone="indigo">{a.provider}</Badge>
            </li>
          ))}
        </ul>
        <LoadMore query={assistants} />
      </Card>
    </div>
  );
}

function NewAssistant() {
  const t = useLang().t;
  const navigate = useNavigate();
  const client = useQueryClient();
  const [name, setName] = useState("");
  const create = useMutation({
    mutationFn: () => unwrap(api.POST("/api/v1/assistants", { body: { name } })),
    onSuccess: (created) => {
      void client.invalidateQueries({ queryKey: ["assistants"] });
      navigate(`/assistants/${created.id}`);
    },
  });
  return (
    <Card title={t("assistants.new")}>
      <form className="flex flex-wrap items-end gap-3" onSubmit={onSubmit(() => create.mutate())}>
        <div className="min-w-60 flex-1">
          <Field label={t("field.name")}>
            {(id) => <Input id={id} required maxLength={200} value={name} onChange={(e) => setName(e.target.value)} />}
          </Field>
        </div>
        <Button type="submit" disabled={create.isPending}>
          {t("assistants.create")}
        </Button>
      </form>
      <div className="mt-2">
        <ErrorNote error={create.error} />
      </div>
    </Card>
  );
}
