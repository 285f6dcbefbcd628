import { useMutation } from "@tanstack/react-query";
import { useState } from "react";
import { api, unwrap } from "../../api/client";
import { Button, Card, Empty, ErrorNote, Field, Input, Select } from "../../components/ui";
import { useT } from "../../i18n";
import { onSubmit } from "../auth/AuthLayout";

/** The passages an assistant would get for a question, with their scores. */
export function SearchTester({ kbId }: { kbId: string }) {
  const t = useT();
  const [query, setQuery] = useState("");
  const [mode, setMode] = useState<"hybrid" | "vector" | "text">("hybrid");
  const search = useMutation({
    mutationFn: () =>
      unwrap(api.POST("/api/v1/knowledge-bases/{kb_id}/search", { params: { path: { kb_id: kbId } }, body: { query, mode, top_k: 5 } })),
  });
  return (
    <Card title={t("search.title")}>
      <form className="grid gap-3 sm:grid-cols-[1fr_9rem_auto] sm:items-end" onSubmit={onSubmit(() => search.mutate())}>
        <Field label={t("search.query")}>{(id) => <Input id={id} required value={query} onChange={(e) => setQuery(e.target.value)} />}</Field>
        <Field label={t("search.mode")}>
          {(id) => (
            <Select id={id} value={mode} onChange={(e) => setMode(e.target.value as typeof mode)}>
              <option value="hybrid">hybrid</option>
              <option value="vector">vector</option>
              <option value="text">text</option>
            </Select>
          )}
        </Field>
        <Button type="submit" disabled={search.isPending}>
          {t("search.submit")}
        </Button>
      </form>
      <div className="mt-3 space-y-2">
        <ErrorNote error={search.error} />
        {search.data ? (
          <>
            <p className="text-xs text-slate-500">{t("search.took", { ms: search.data.took_ms.toFixed(1), search: search.data.search })}</p>
            {search.data.hits.length === 0 ? <Empty>{t("search.none")}</Empty> : null}
            <ol className="space-y-2">
              {search.data.hits.map((hit) => (
                <li key={hit.chunk_id} className="rounded border border-slate-200 p-2 text-sm">
                  <p className="text-xs font-medium">
                    {hit.citation.title ?? hit.citation.filename ?? hit.citation.url} · score {hit.score.toFixed(4)} · similarity {hit.similarity.toFixed(3)}
                  </p>
                  <p className="mt-1 whitespace-pre-wrap text-slate-700">{hit.text}</p>
                </li>
              ))}
            </ol>
          </>
        ) : null}
      </div>
    </Card>
  );
}
