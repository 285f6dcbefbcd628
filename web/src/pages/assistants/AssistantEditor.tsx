import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { Link, useNavigate, useParams } from "react-router";
import { api, unwrap, type Schemas } from "../../api/client";
import { ApiError } from "../../auth/session";
import { Button, Card, ErrorNote, Field, Input, Loading, PageHeader, Select, Textarea } from "../../components/ui";
import { useLang } from "../../i18n";
import { changedFields, draftOf, type AssistantDraft } from "../../lib/assistantForm";
import { canChat, canManage } from "../../lib/permissions";
import { useWorkspace } from "../../lib/workspace";
import { NotFoundNote } from "../NotFound";
import { onSubmit } from "../auth/AuthLayout";
import { Playground } from "./Playground";

export function useAssistant(id: string) {
  return useQuery({
    queryKey: ["assistant", id],
    queryFn: () => unwrap(api.GET("/api/v1/assistants/{assistant_id}", { params: { path: { assistant_id: id } } })),
  });
}

export default function AssistantEditor() {
  const { assistantId = "" } = useParams();
  const { t } = useLang();
  const { role } = useWorkspace();
  const assistant = useAssistant(assistantId);
  if (assistant.isPending) return <Loading />;
  if (assistant.error instanceof ApiError && (assistant.error.status === 404 || assistant.error.status === 422)) {
    return <NotFoundNote message={t("assistants.notFound")} />;
  }
  if (!assistant.data) return <ErrorNote error={assistant.error} />;
  return (
    <div className="space-y-4">
      <PageHeader title={assistant.data.name}>
        <Link className="rounded-md border border-slate-300 px-3 py-2 text-sm hover:bg-slate-100" to={`/channels?assistant=${assistant.data.id}`}>
          {t("assistants.install")}
        </Link>
      </PageHeader>
      <div className="grid gap-4 lg:grid-cols-2">
        <Settings key={assistant.data.updated_at} assistant={assistant.data} editable={canManage(role)} />
        {canChat(role) ? <Playground assistant={assistant.data} /> : <Card title={t("playground.title")}>{t("playground.noChat")}</Card>}
      </div>
    </div>
  );
}

function Settings({ assistant, editable }: { assistant: Schemas["AssistantRead"]; editable: boolean }) {
  const { t } = useLang();
  const client = useQueryClient();
  const navigate = useNavigate();
  const [draft, setDraft] = useState<AssistantDraft>(() => draftOf(assistant));
  useEffect(() => setDraft(draftOf(assistant)), [assistant]);
  const kbs = useQuery({ queryKey: ["knowledge-bases", "all"], queryFn: () => unwrap(api.GET("/api/v1/knowledge-bases", { params: { query: { limit: 200 } } })) });
  const save = useMutation({
    mutationFn: () =>
      unwrap(api.PATCH("/api/v1/assistants/{assistant_id}", { params: { path: { assistant_id: assistant.id } }, body: changedFields(assistant, draft) })),
    onSuccess: (saved) => {
      client.setQueryData(["assistant", assistant.id], saved);
      void client.invalidateQueries({ queryKey: ["assistants"] });
    },
  });
  const remove = useMutation({
    mutationFn: () => unwrap(api.DELETE("/api/v1/assistants/{assistant_id}", { params: { path: { assistant_id: assistant.id } } })),
    onSuccess: () => {
      void client.invalidateQueries({ queryKey: ["assistants"] });
      navigate("/");
    },
  });
  const set = <K extends keyof AssistantDraft>(key: K, value: AssistantDraft[K]) => setDraft((d) => ({ ...d, [key]: value }));
  const dirty = Object.keys(changedFields(assistant, draft)).length > 0;
  return (
    <Card title={t("assistants.settings")}>
      <form className="space-y-3" onSubmit={onSubmit(() => save.mutate())}>
        <fieldset disabled={!editable} className="space-y-3">
          <Field label={t("field.name")}>{(id) => <Input id={id} required value={draft.name} onChange={(e) => set("name", e.target.value)} />}</Field>
          <Field label={t("assistants.instructions")} hint={t("assistants.instructionsHint")}>
            {(id) => <Textarea id={id} rows={5} value={draft.instructions} onChange={(e) => set("instructions", e.target.value)} />}
          </Field>
          <div className="grid gap-3 sm:grid-cols-2">
            <Field label={t("assistants.provider")} hint={t("assistants.providerHint")}>
              {(id) => (
                <Select id={id} value={draft.provider} onChange={(e) => set("provider", e.target.value as AssistantDraft["provider"])}>
                  <option value="auto">auto</option>
                  <option value="openai">openai</option>
                  <option value="offline">offline</option>
                </Select>
              )}
            </Field>
            <Field label={t("assistants.model")} hint={t("assistants.modelHint")}>
              {(id) => <Input id={id} value={draft.model} onChange={(e) => set("model", e.target.value)} />}
            </Field>
            <Field label={t("assistants.temperature")}>
              {(id) => <Input id={id} type="number" min={0} max={2} step={0.1} value={draft.temperature} onChange={(e) => set("temperature", e.target.value)} />}
            </Field>
            <Field label={t("assistants.maxTokens")}>
              {(id) => <Input id={id} type="number" min={16} max={16000} value={draft.max_answer_tokens} onChange={(e) => set("max_answer_tokens", e.target.value)} />}
            </Field>
            <Field label={t("assistants.topK")}>
              {(id) => <Input id={id} type="number" min={1} max={20} value={draft.top_k} onChange={(e) => set("top_k", e.target.value)} />}
            </Field>
            <Field label={t("assistants.threshold")} hint={t("assistants.thresholdHint")}>
              {(id) => <Input id={id} type="number" min={0} max={1} step={0.01} value={draft.threshold} onChange={(e) => set("threshold", e.target.value)} />}
            </Field>
            <Field label={t("assistants.language")}>
              {(id) => (
                <Select id={id} value={draft.language} onChange={(e) => set("language", e.target.value === "ru" ? "ru" : "en")}>
                  <option value="en">English</option>
                  <option value="ru">Русский</option>
                </Select>
              )}
            </Field>
            <Field label={t("assistants.dailyCap")} hint={t("assistants.dailyCapHint")}>
              {(id) => <Input id={id} type="number" min={1} value={draft.visitor_daily_message_cap} onChange={(e) => set("visitor_daily_message_cap", e.target.value)} />}
            </Field>
          </div>
          <fieldset>
            <legend className="text-sm font-medium text-slate-700">{t("assistants.knowledgeBases")}</legend>
            <ErrorNote error={kbs.error} />
            {kbs.data?.items.length === 0 ? (
              <p className="text-sm text-slate-500">
                {t("assistants.noKb")} <Link className="underline" to="/knowledge">{t("nav.knowledge")}</Link>
              </p>
            ) : null}
            {kbs.data?.items.map((kb) => (
              <label key={kb.id} className="flex items-center gap-2 text-sm">
                <input
                  type="checkbox"
                  checked={draft.knowledge_base_ids.includes(kb.id)}
                  onChange={(e) =>
                    set("knowledge_base_ids", e.target.checked ? [...draft.knowledge_base_ids, kb.id] : draft.knowledge_base_ids.filter((k) => k !== kb.id))
                  }
                />
                {kb.name}
              </label>
            ))}
          </fieldset>
          <Field label={t("assistants.welcome")}>
            {(id) => <Textarea id={id} rows={2} value={draft.welcome_message} onChange={(e) => set("welcome_message", e.target.value)} />}
          </Field>
          <Field label={t("assistants.suggested")} hint={t("assistants.suggestedHint")}>
            {(id) => <Textarea id={id} rows={3} value={draft.suggested_questions} onChange={(e) => set("suggested_questions", e.target.value)} />}
          </Field>
          <Field label={t("assistants.fallback")}>
            {(id) => <Textarea id={id} rows={2} required value={draft.fallback_message} onChange={(e) => set("fallback_message", e.target.value)} />}
          </Field>
        </fieldset>
        <ErrorNote error={save.error ?? remove.error} />
        {save.isSuccess && !dirty ? <p role="status" className="text-sm text-green-700">{t("saved")}</p> : null}
        {editable ? (
          <div className="flex flex-wrap justify-between gap-2">
            <Button type="submit" disabled={!dirty || save.isPending}>
              {t("save")}
            </Button>
            <Button
              variant="danger"
              onClick={() => {
                if (window.confirm(t("assistants.confirmDelete", { name: assistant.name }))) remove.mutate();
              }}
            >
              {t("delete")}
            </Button>
          </div>
        ) : (
          <p className="text-sm text-slate-500">{t("readOnly")}</p>
        )}
      </form>
    </Card>
  );
}
