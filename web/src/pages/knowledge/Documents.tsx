import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api, unwrap, type Schemas } from "../../api/client";
import { Badge, Button, Card, Empty, ErrorNote, Loading, Select, Table } from "../../components/ui";
import { useLang } from "../../i18n";
import type { MessageKey } from "../../i18n/messages";
import { STATUS_TONE, pollInterval, progressOf } from "../../lib/documents";
import { formatBytes, formatDate } from "../../lib/format";
import { LoadMore, usePaged } from "../../lib/paged";

type Status = Schemas["DocumentStatus"];

export function Documents({ kbId, editable }: { kbId: string; editable: boolean }) {
  const { t, lang } = useLang();
  const client = useQueryClient();
  const [status, setStatus] = useState<Status | "">("");
  const documents = usePaged(
    ["documents", kbId, status],
    (cursor) =>
      unwrap(
        api.GET("/api/v1/knowledge-bases/{kb_id}/documents", {
          params: { path: { kb_id: kbId }, query: { cursor, status: status || undefined } },
        }),
      ),
    { refetchInterval: pollInterval },
  );
  const changed = () => {
    void client.invalidateQueries({ queryKey: ["documents", kbId] });
    void client.invalidateQueries({ queryKey: ["knowledge-base", kbId] });
  };
  const path = (id: string) => ({ params: { path: { kb_id: kbId, document_id: id } } });
  const reprocess = useMutation({
    mutationFn: (id: string) => unwrap(api.POST("/api/v1/knowledge-bases/{kb_id}/documents/{document_id}/reprocess", path(id))),
    onSuccess: changed,
  });
  const remove = useMutation({
    mutationFn: (id: string) => unwrap(api.DELETE("/api/v1/knowledge-bases/{kb_id}/documents/{document_id}", path(id))),
    onSuccess: changed,
  });
  return (
    <Card
      title={t("docs.title")}
      actions={
        <div className="w-40">
          <label htmlFor="doc-status" className="sr-only">
            {t("docs.filter")}
          </label>
          <Select id="doc-status" value={status} onChange={(e) => setStatus(e.target.value as Status | "")}>
            <option value="">{t("docs.all")}</option>
            {(["queued", "processing", "ready", "failed"] as const).map((s) => (
              <option key={s} value={s}>
                {t(`status.${s}` as MessageKey)}
              </option>
            ))}
          </Select>
        </div>
      }
    >
      {documents.isPending ? <Loading /> : null}
      <ErrorNote error={documents.error ?? reprocess.error ?? remove.error} />
      {documents.isSuccess && documents.items.length === 0 ? <Empty>{t("docs.empty")}</Empty> : null}
      {documents.items.length ? (
        <Table head={[t("docs.document"), t("docs.status"), t("docs.size"), t("docs.updated"), ""]}>
          {documents.items.map((d) => (
            <tr key={d.id} data-testid="document-row">
              <td className="max-w-xs px-2 py-2">
                <span className="block truncate">{d.title ?? d.filename ?? d.url}</span>
                {d.url ? <span className="block truncate text-xs text-slate-500">{d.url}</span> : null}
              </td>
              <td className="px-2 py-2">
                <Badge tone={STATUS_TONE[d.status]}>{t(`status.${d.status}` as MessageKey)}</Badge>
                {d.status === "processing" ? <span className="ml-2 text-xs">{progressOf(d)}%</span> : null}
                {d.error ? <span className="mt-1 block text-xs text-red-700">{d.error}</span> : null}
              </td>
              <td className="px-2 py-2 text-xs">{formatBytes(d.size_bytes)}</td>
              <td className="whitespace-nowrap px-2 py-2 text-xs">{formatDate(d.updated_at, lang)}</td>
              <td className="whitespace-nowrap px-2 py-2 text-right">
                {editable ? (
                  <>
                    <Button variant="ghost" onClick={() => reprocess.mutate(d.id)}>
                      {t("docs.resync")}
                    </Button>
                    <Button
                      variant="danger"
                      onClick={() => {
                        if (window.confirm(t("docs.confirmDelete"))) remove.mutate(d.id);
                      }}
                    >
                      {t("delete")}
                    </Button>
                  </>
                ) : null}
              </td>
            </tr>
          ))}
        </Table>
      ) : null}
      <LoadMore query={documents} />
    </Card>
  );
}
