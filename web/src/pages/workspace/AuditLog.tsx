import { useState } from "react";
import { api, unwrap } from "../../api/client";
import { Card, Empty, ErrorNote, Field, Input, Loading, PageHeader, Table } from "../../components/ui";
import { useLang } from "../../i18n";
import { formatDate } from "../../lib/format";
import { LoadMore, usePaged } from "../../lib/paged";

export default function AuditLog() {
  const { t, lang } = useLang();
  const [action, setAction] = useState("");
  const events = usePaged(["audit", action], (cursor) =>
    unwrap(api.GET("/api/v1/audit-log", { params: { query: { cursor, action: action || undefined } } })),
  );
  return (
    <div className="space-y-4">
      <PageHeader title={t("audit.title")} />
      <Card>
        <div className="mb-3 max-w-xs">
          <Field label={t("audit.filter")} hint={t("audit.filterHint")}>
            {(id) => <Input id={id} value={action} onChange={(e) => setAction(e.target.value.trim())} placeholder="assistant.update" />}
          </Field>
        </div>
        {events.isPending ? <Loading /> : null}
        <ErrorNote error={events.error} />
        {events.isSuccess && events.items.length === 0 ? <Empty>{t("audit.empty")}</Empty> : null}
        {events.items.length ? (
          <Table head={[t("audit.when"), t("audit.action"), t("audit.object"), t("audit.actor"), "IP"]}>
            {events.items.map((e) => (
              <tr key={e.id}>
                <td className="whitespace-nowrap px-2 py-2">{formatDate(e.created_at, lang)}</td>
                <td className="px-2 py-2 font-mono text-xs">{e.action}</td>
                <td className="px-2 py-2 text-xs">
                  {e.object_type} {e.object_id ? <span className="font-mono">{e.object_id.slice(0, 8)}</span> : null}
                </td>
                <td className="px-2 py-2 text-xs">
                  {e.actor_user_id ? t("audit.byUser") : e.actor_api_key_id ? t("audit.byKey") : "—"}
                </td>
                <td className="px-2 py-2 text-xs">{e.ip ?? "—"}</td>
              </tr>
            ))}
          </Table>
        ) : null}
        <LoadMore query={events} />
      </Card>
    </div>
  );
}
