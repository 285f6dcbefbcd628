import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api, unwrap } from "../../api/client";
import { Badge, Button, Card, Empty, ErrorNote, Field, Input, Loading, Select, Table } from "../../components/ui";
import { useLang } from "../../i18n";
import { formatDate } from "../../lib/format";
import { LoadMore, usePaged } from "../../lib/paged";
import { onSubmit } from "../auth/AuthLayout";

type WebKind = "url" | "sitemap" | "crawl";
// Re-sync periods offered, in minutes; the API takes any from 15 minutes to 90 days.
const SCHEDULES = [0, 60, 360, 1440, 10080];

export function Sources({ kbId, editable }: { kbId: string; editable: boolean }) {
  const { t, lang } = useLang();
  const client = useQueryClient();
  const sources = usePaged(["sources", kbId], (cursor) =>
    unwrap(api.GET("/api/v1/knowledge-bases/{kb_id}/sources", { params: { path: { kb_id: kbId }, query: { cursor } } })),
  );
  const changed = () => {
    void client.invalidateQueries({ queryKey: ["sources", kbId] });
    void client.invalidateQueries({ queryKey: ["documents", kbId] });
  };
  const path = (id: string) => ({ params: { path: { kb_id: kbId, source_id: id } } });
  const sync = useMutation({
    mutationFn: (id: string) => unwrap(api.POST("/api/v1/knowledge-bases/{kb_id}/sources/{source_id}/sync", path(id))),
    onSuccess: changed,
  });
  const remove = useMutation({
    mutationFn: (id: string) => unwrap(api.DELETE("/api/v1/knowledge-bases/{kb_id}/sources/{source_id}", path(id))),
    onSuccess: changed,
  });
  const web = sources.items.filter((s) => s.kind !== "upload");
  return (
    <Card title={t("sources.title")}>
      {editable ? <NewSource kbId={kbId} onAdded={changed} /> : null}
      {sources.isPending ? <Loading /> : null}
      <ErrorNote error={sources.error ?? sync.error ?? remove.error} />
      {sources.isSuccess && web.length === 0 ? <Empty>{t("sources.empty")}</Empty> : null}
      {web.length ? (
        <Table head={[t("sources.source"), t("sources.schedule"), t("sources.lastSync"), t("sources.nextSync"), ""]}>
          {web.map((s) => (
            <tr key={s.id}>
              <td className="max-w-xs px-2 py-2">
                <Badge>{s.kind}</Badge> <span className="break-all">{s.title ?? s.url}</span>
                {s.sync_error ? <span className="mt-1 block text-xs text-red-700">{s.sync_error}</span> : null}
              </td>
              <td className="px-2 py-2 text-xs">{s.sync_interval_minutes ? scheduleLabel(s.sync_interval_minutes, t) : t("sources.manual")}</td>
              <td className="px-2 py-2 text-xs">{formatDate(s.last_synced_at, lang)}</td>
              <td className="px-2 py-2 text-xs">{formatDate(s.next_sync_at, lang)}</td>
              <td className="whitespace-nowrap px-2 py-2 text-right">
                {editable && s.url ? (
                  <Button variant="ghost" onClick={() => sync.mutate(s.id)}>
                    {t("sources.syncNow")}
                  </Button>
                ) : null}
                {editable ? (
                  <Button variant="danger" onClick={() => remove.mutate(s.id)}>
                    {t("delete")}
                  </Button>
                ) : null}
              </td>
            </tr>
          ))}
        </Table>
      ) : null}
      <LoadMore query={sources} />
    </Card>
  );
}

function scheduleLabel(minutes: number, t: ReturnType<typeof useLang>["t"]): string {
  if (minutes % 1440 === 0) return t("sources.everyDays", { n: minutes / 1440 });
  if (minutes % 60 === 0) return t("sources.everyHours", { n: minutes / 60 });
  return t("sources.everyMinutes", { n: minutes });
}

function NewSource({ kbId, onAdded }: { kbId: string; onAdded: () => void }) {
  const { t } = useLang();
  const [kind, setKind] = useState<WebKind>("url");
  const [url, setUrl] = useState("");
  const [schedule, setSchedule] = useState(0);
  const [depth, setDepth] = useState("2");
  const [pages, setPages] = useState("50");
  const add = useMutation({
    mutationFn: () =>
      unwrap(
        api.POST("/api/v1/knowledge-bases/{kb_id}/sources", {
          params: { path: { kb_id: kbId } },
          body: {
            kind,
            url,
            sync_interval_minutes: schedule || null,
            crawl: kind === "crawl" ? { max_depth: Number(depth), max_pages: Number(pages) } : null,
          },
        }),
      ),
    onSuccess: () => {
      setUrl("");
      onAdded();
    },
  });
  return (
    <form className="mb-4 grid gap-3 sm:grid-cols-2 lg:grid-cols-[8rem_1fr_10rem_auto] lg:items-end" onSubmit={onSubmit(() => add.mutate())}>
      <Field label={t("sources.kind")}>
        {(id) => (
          <Select id={id} value={kind} onChange={(e) => setKind(e.target.value as WebKind)}>
            <option value="url">{t("sources.kindUrl")}</option>
            <option value="sitemap">{t("sources.kindSitemap")}</option>
            <option value="crawl">{t("sources.kindCrawl")}</option>
          </Select>
        )}
      </Field>
      <Field label="URL">{(id) => <Input id={id} type="url" required placeholder="https://" value={url} onChange={(e) => setUrl(e.target.value)} />}</Field>
      <Field label={t("sources.schedule")}>
        {(id) => (
          <Select id={id} value={schedule} onChange={(e) => setSchedule(Number(e.target.value))}>
            {SCHEDULES.map((m) => (
              <option key={m} value={m}>
                {m ? scheduleLabel(m, t) : t("sources.manual")}
              </option>
            ))}
          </Select>
        )}
      </Field>
      <Button type="submit" disabled={add.isPending}>
        {t("sources.add")}
      </Button>
      {kind === "crawl" ? (
        <div className="grid grid-cols-2 gap-3 sm:col-span-2 lg:col-span-4 lg:max-w-md">
          <Field label={t("sources.depth")}>{(id) => <Input id={id} type="number" min={0} max={20} value={depth} onChange={(e) => setDepth(e.target.value)} />}</Field>
          <Field label={t("sources.maxPages")}>{(id) => <Input id={id} type="number" min={1} value={pages} onChange={(e) => setPages(e.target.value)} />}</Field>
        </div>
      ) : null}
      <div className="sm:col-span-2 lg:col-span-4">
        <ErrorNote error={add.error} />
      </div>
    </form>
  );
}
