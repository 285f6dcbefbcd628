import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { useSearchParams } from "react-router";
import { api, unwrap, type Schemas } from "../../api/client";
import { Badge, Button, Card, Empty, ErrorNote, Field, Loading, PageHeader, Select, Textarea } from "../../components/ui";
import { AssistantPicker } from "../../components/AssistantPicker";
import { useLang } from "../../i18n";
import { formatDate } from "../../lib/format";
import { canManage } from "../../lib/permissions";
import { useWorkspace } from "../../lib/workspace";
import { useAssistants } from "../assistants/AssistantList";
import { onSubmit } from "../auth/AuthLayout";

type Group = Schemas["UnansweredGroup"];

export default function Unanswered() {
  const { t } = useLang();
  const { role } = useWorkspace();
  const [params, setParams] = useSearchParams();
  const assistants = useAssistants();
  const assistantId = params.get("assistant") ?? assistants.items[0]?.id ?? "";
  const groups = useQuery({
    queryKey: ["unanswered", assistantId],
    queryFn: () => unwrap(api.GET("/api/v1/assistants/{assistant_id}/unanswered-questions", { params: { path: { assistant_id: assistantId } } })),
    enabled: Boolean(assistantId),
  });
  return (
    <div className="space-y-4">
      <PageHeader title={t("unanswered.title")}>
        {assistants.items.length ? (
          <div className="w-64">
            <AssistantPicker assistants={assistants.items} value={assistantId} onChange={(id) => setParams({ assistant: id })} />
          </div>
        ) : null}
      </PageHeader>
      <p className="text-sm text-slate-600">{t("unanswered.hint")}</p>
      {assistants.isPending || groups.isLoading ? <Loading /> : null}
      <ErrorNote error={assistants.error ?? groups.error} />
      {assistants.isSuccess && !assistants.items.length ? <Empty>{t("channels.noAssistant")}</Empty> : null}
      {groups.isSuccess && groups.data.length === 0 ? <Empty>{t("unanswered.empty")}</Empty> : null}
      {groups.data?.map((group) => (
        <GroupCard key={group.question_ids[0]} group={group} assistantId={assistantId} editable={canManage(role)} />
      ))}
    </div>
  );
}

function GroupCard({ group, assistantId, editable }: { group: Group; assistantId: string; editable: boolean }) {
  const { t, lang } = useLang();
  const [open, setOpen] = useState(false);
  return (
    <Card>
      <div className="flex flex-wrap items-start justify-between gap-2">
        <div>
          <p className="font-medium">{group.question}</p>
          <p className="text-xs text-slate-500">
            <Badge tone="amber">{t("unanswered.asked", { n: group.count })}</Badge> {t("unanswered.last", { date: formatDate(group.last_asked_at, lang) })}
          </p>
          {group.examples.length > 1 ? (
            <ul className="mt-2 list-disc pl-5 text-sm text-slate-600">
              {group.examples.map((e) => (
                <li key={e}>{e}</li>
              ))}
            </ul>
          ) : null}
        </div>
        {editable && !open ? <Button onClick={() => setOpen(true)}>{t("unanswered.add")}</Button> : null}
      </div>
      {open ? <AnswerForm group={group} assistantId={assistantId} onDone={() => setOpen(false)} /> : null}
    </Card>
  );
}

/** Turns the group into a Q&A entry in a knowledge base, then marks its questions resolved. */
function AnswerForm({ group, assistantId, onDone }: { group: Group; assistantId: string; onDone: () => void }) {
  const { t } = useLang();
  const client = useQueryClient();
  const kbs = useQuery({ queryKey: ["knowledge-bases", "all"], queryFn: () => unwrap(api.GET("/api/v1/knowledge-bases", { params: { query: { limit: 200 } } })) });
  const [kbId, setKbId] = useState("");
  const [answer, setAnswer] = useState("");
  const chosenKb = kbId || kbs.data?.items[0]?.id || "";
  const add = useMutation({
    mutationFn: async () => {
      await unwrap(
        api.POST("/api/v1/knowledge-bases/{kb_id}/sources", {
          params: { path: { kb_id: chosenKb } },
          body: { kind: "qa", title: group.question.slice(0, 200), pairs: [{ question: group.question, answer }] },
        }),
      );
      await unwrap(
        api.POST("/api/v1/assistants/{assistant_id}/unanswered-questions/resolve", {
          params: { path: { assistant_id: assistantId } },
          body: { question_ids: group.question_ids },
        }),
      );
    },
    onSuccess: () => {
      void client.invalidateQueries({ queryKey: ["unanswered", assistantId] });
      onDone();
    },
  });
  return (
    <form className="mt-3 space-y-3 border-t border-slate-200 pt-3" onSubmit={onSubmit(() => add.mutate())}>
      <Field label={t("unanswered.kb")}>
        {(id) => (
          <Select id={id} required value={chosenKb} onChange={(e) => setKbId(e.target.value)}>
            {kbs.data?.items.map((kb) => (
              <option key={kb.id} value={kb.id}>
                {kb.name}
              </option>
            ))}
          </Select>
        )}
      </Field>
      {kbs.isSuccess && !kbs.data.items.length ? <Empty>{t("kb.empty")}</Empty> : null}
      <Field label={t("unanswered.answer")}>{(id) => <Textarea id={id} rows={4} required value={answer} onChange={(e) => setAnswer(e.target.value)} />}</Field>
      <ErrorNote error={add.error ?? kbs.error} />
      <div className="flex gap-2">
        <Button type="submit" disabled={add.isPending || !chosenKb}>
          {t("unanswered.save")}
        </Button>
        <Button variant="ghost" onClick={onDone}>
          {t("cancel")}
        </Button>
      </div>
    </form>
  );
}
