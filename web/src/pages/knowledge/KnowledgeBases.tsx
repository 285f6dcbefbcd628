import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { Link, useNavigate } from "react-router";
import { api, unwrap } from "../../api/client";
import { Button, Card, Empty, ErrorNote, Field, Input, Loading, PageHeader, Select } from "../../components/ui";
import { useLang } from "../../i18n";
import { formatDate } from "../../lib/format";
import { LoadMore, usePaged } from "../../lib/paged";
import { canManage } from "../../lib/permissions";
import { useWorkspace } from "../../lib/workspace";
import { onSubmit } from "../auth/AuthLayout";

export default function KnowledgeBases() {
  const { t, lang } = useLang();
  const { role } = useWorkspace();
  const kbs = usePaged(["knowledge-bases"], (cursor) => unwrap(api.GET("/api/v1/knowledge-bases", { params: { query: { cursor } } })));
  return (
    <div className="space-y-4">
      <PageHeader title={t("kb.title")} />
      {canManage(role) ? <NewKnowledgeBase /> : null}
      <Card title={t("kb.list")}>
        {kbs.isPending ? <Loading /> : null}
        <ErrorNote error={kbs.error} />
        {kbs.isSuccess && kbs.items.length === 0 ? <Empty>{t("kb.empty")}</Empty> : null}
        <ul className="divide-y divide-slate-100">
          {kbs.items.map((kb) => (
            <li key={kb.id} className="py-3">
              <Link className="font-medium text-indigo-700 hover:underline" to={`/knowledge/${kb.id}`}>
                {kb.name}
              </Link>
              <p className="text-xs text-slate-500">
                {kb.description ? `${kb.description} · ` : ""}
                {kb.embedding_model} · {formatDate(kb.updated_at, lang)}
              </p>
            </li>
          ))}
        </ul>
        <LoadMore query={kbs} />
      </Card>
    </div>
  );
}

function NewKnowledgeBase() {
  const t = useLang().t;
  const navigate = useNavigate();
  const client = useQueryClient();
  const [name, setName] = useState("");
  const [language, setLanguage] = useState<"english" | "russian" | "simple">("english");
  const create = useMutation({
    mutationFn: () => unwrap(api.POST("/api/v1/knowledge-bases", { body: { name, language } })),
    onSuccess: (kb) => {
      void client.invalidateQueries({ queryKey: ["knowledge-bases"] });
      navigate(`/knowledge/${kb.id}`);
    },
  });
  return (
    <Card title={t("kb.new")}>
      <form className="grid gap-3 sm:grid-cols-[1fr_12rem_auto] sm:items-end" onSubmit={onSubmit(() => create.mutate())}>
        <Field label={t("field.name")}>{(id) => <Input id={id} required value={name} onChange={(e) => setName(e.target.value)} />}</Field>
        <Field label={t("kb.language")}>
          {(id) => (
            <Select id={id} value={language} onChange={(e) => setLanguage(e.target.value as typeof language)}>
              <option value="english">English</option>
              <option value="russian">Русский</option>
              <option value="simple">{t("kb.languageSimple")}</option>
            </Select>
          )}
        </Field>
        <Button type="submit" disabled={create.isPending}>
          {t("kb.create")}
        </Button>
      </form>
      <div className="mt-2">
        <ErrorNote error={create.error} />
      </div>
    </Card>
  );
}
