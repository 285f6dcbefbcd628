import { useQuery } from "@tanstack/react-query";
import { useParams } from "react-router";
import { api, unwrap } from "../../api/client";
import { ApiError } from "../../auth/session";
import { Answer, citationsOf } from "../../components/Answer";
import { Badge, Card, Empty, ErrorNote, Loading, PageHeader } from "../../components/ui";
import { useLang } from "../../i18n";
import { formatDate } from "../../lib/format";
import { NotFoundNote } from "../NotFound";

export default function Transcript() {
  const { t, lang } = useLang();
  const { conversationId = "" } = useParams();
  const path = { params: { path: { conversation_id: conversationId } } };
  const conversation = useQuery({
    queryKey: ["conversation", conversationId],
    queryFn: () => unwrap(api.GET("/api/v1/conversations/{conversation_id}", path)),
  });
  const messages = useQuery({
    queryKey: ["messages", conversationId],
    queryFn: () =>
      unwrap(api.GET("/api/v1/conversations/{conversation_id}/messages", { params: { ...path.params, query: { limit: 200 } } })),
    enabled: conversation.isSuccess,
    refetchInterval: 5000,
  });
  if (conversation.isPending) return <Loading />;
  if (conversation.error instanceof ApiError && (conversation.error.status === 404 || conversation.error.status === 422)) {
    return <NotFoundNote message={t("conv.notFound")} />;
  }
  if (!conversation.data) return <ErrorNote error={conversation.error} />;
  const c = conversation.data;
  const ordered = [...(messages.data?.items ?? [])].reverse();
  return (
    <div className="space-y-4">
      <PageHeader title={c.title ?? t("conv.conversation")}>
        <Badge>{c.channel}</Badge>
        <span className="text-sm text-slate-500">{formatDate(c.created_at, lang)}</span>
      </PageHeader>
      <Card>
        {messages.isPending ? <Loading /> : null}
        <ErrorNote error={messages.error} />
        {messages.isSuccess && ordered.length === 0 ? <Empty>{t("conv.noMessages")}</Empty> : null}
        <ol className="space-y-3">
          {ordered.map((m) => (
            <li key={m.id} className={`text-sm ${m.role === "user" ? "ml-8 rounded-md bg-indigo-50 p-3" : "mr-8 rounded-md bg-slate-100 p-3"}`} data-testid={`message-${m.role}`}>
              <p className="mb-1 text-xs text-slate-500">
                {m.role === "user" ? t("conv.visitor") : t("conv.assistant")} · {formatDate(m.created_at, lang)}
                {m.status === "fallback" ? <> · <Badge tone="amber">{t("conv.fallback")}</Badge></> : null}
              </p>
              {m.role === "user" ? <p className="whitespace-pre-wrap">{m.content}</p> : <Answer text={m.content} citations={citationsOf(m.citations)} />}
              {m.feedback ? (
                <p className="mt-2 text-xs" data-testid="feedback">
                  <Badge tone={m.feedback.rating === "up" ? "green" : "red"}>
                    {m.feedback.rating === "up" ? `👍 ${t("conv.up")}` : `👎 ${t("conv.down")}`}
                  </Badge>
                  {m.feedback.comment ? <span className="ml-2">“{m.feedback.comment}”</span> : null}
                </p>
              ) : null}
            </li>
          ))}
        </ol>
      </Card>
    </div>
  );
}
