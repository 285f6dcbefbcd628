import { Link, useSearchParams } from "react-router";
import { api, unwrap, type Schemas } from "../../api/client";
import { Badge, Card, Empty, ErrorNote, Field, Input, Loading, PageHeader, Select, Table } from "../../components/ui";
import { AssistantPicker } from "../../components/AssistantPicker";
import { useLang } from "../../i18n";
import { filtersFrom, queryOf, type ConversationFilters } from "../../lib/conversationFilters";
import { formatDate } from "../../lib/format";
import { LoadMore, usePaged } from "../../lib/paged";
import { useAssistants } from "../assistants/AssistantList";

export default function Conversations() {
  const { t, lang } = useLang();
  const [params, setParams] = useSearchParams();
  const filters = filtersFrom(params);
  const query = queryOf(filters);
  const assistants = useAssistants();
  const names = new Map(assistants.items.map((a) => [a.id, a.name]));
  const conversations = usePaged(["conversations", query], (cursor) =>
    unwrap(
      api.GET("/api/v1/conversations", {
        params: { query: { ...query, cursor } },
      }),
    ),
  );
  const set = (name: keyof ConversationFilters, value: string) => {
    const next = new URLSearchParams(params);
    if (value) next.set(name, value);
    else next.delete(name);
    setParams(next, { replace: true });
  };
  return (
    <div className="space-y-4">
      <PageHeader title={t("conv.title")} />
      <Card>
        <div className="mb-4 grid gap-3 sm:grid-cols-3 lg:grid-cols-6">
          <Field label={t("conv.search")}>{(id) => <Input id={id} type="search" value={filters.q} onChange={(e) => set("q", e.target.value)} />}</Field>
          <AssistantPicker assistants={assistants.items} value={filters.assistant_id} onChange={(id) => set("assistant_id", id)} anyLabel={t("conv.any")} />
          <Field label={t("conv.channel")}>
            {(id) => (
              <Select id={id} value={filters.channel} onChange={(e) => set("channel", e.target.value)}>
                <option value="">{t("conv.any")}</option>
                <option value="widget">widget</option>
                <option value="telegram">telegram</option>
                <option value="api">api</option>
              </Select>
            )}
          </Field>
          <Field label={t("conv.feedback")}>
            {(id) => (
              <Select id={id} value={filters.feedback} onChange={(e) => set("feedback", e.target.value)}>
                <option value="">{t("conv.any")}</option>
                <option value="up">👍 {t("conv.up")}</option>
                <option value="down">👎 {t("conv.down")}</option>
              </Select>
            )}
          </Field>
          <Field label={t("conv.since")}>{(id) => <Input id={id} type="date" value={filters.since} onChange={(e) => set("since", e.target.value)} />}</Field>
          <Field label={t("conv.until")}>{(id) => <Input id={id} type="date" value={filters.until} onChange={(e) => set("until", e.target.value)} />}</Field>
        </div>
        {conversations.isPending ? <Loading /> : null}
        <ErrorNote error={conversations.error} />
        {conversations.isSuccess && conversations.items.length === 0 ? <Empty>{t("conv.empty")}</Empty> : null}
        {conversations.items.length ? (
          <Table head={[t("conv.conversation"), t("channels.assistant"), t("conv.channel"), t("conv.last")]}>
            {conversations.items.map((c: Schemas["ConversationRead"]) => (
              <tr key={c.id} data-testid="conversation-row">
                <td className="px-2 py-2">
                  <Link className="text-indigo-700 hover:underline" to={`/conversations/${c.id}`}>
                    {c.title ?? c.external_user_id ?? c.id.slice(0, 8)}
                  </Link>
                </td>
                <td className="px-2 py-2">{names.get(c.assistant_id) ?? "—"}</td>
                <td className="px-2 py-2">
                  <Badge>{c.channel}</Badge>
                </td>
                <td className="whitespace-nowrap px-2 py-2 text-xs">{formatDate(c.last_message_at ?? c.created_at, lang)}</td>
              </tr>
            ))}
          </Table>
        ) : null}
        <LoadMore query={conversations} />
      </Card>
    </div>
  );
}
