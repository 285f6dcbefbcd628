import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { Bar, BarChart, CartesianGrid, Legend, ResponsiveContainer, Tooltip, XAxis, YAxis } from "recharts";
import { api, unwrap, type Schemas } from "../../api/client";
import { Card, Empty, ErrorNote, Field, Input, Loading, PageHeader, Table } from "../../components/ui";
import { useLang } from "../../i18n";
import { formatCost, formatDate, percent } from "../../lib/format";
import { useAssistants } from "../assistants/AssistantList";

type Bucket = Schemas["UsageBucket"];

export default function Usage() {
  const { t } = useLang();
  const [since, setSince] = useState("");
  const [until, setUntil] = useState("");
  const usage = useQuery({
    queryKey: ["usage", since, until],
    queryFn: () => unwrap(api.GET("/api/v1/usage", { params: { query: { since: since || undefined, until: until || undefined } } })),
  });
  const assistants = useAssistants();
  const names = new Map(assistants.items.map((a) => [a.id, a.name]));
  return (
    <div className="space-y-4">
      <PageHeader title={t("usage.title")}>
        <div className="flex gap-2">
          <Field label={t("conv.since")}>{(id) => <Input id={id} type="date" value={since} onChange={(e) => setSince(e.target.value)} />}</Field>
          <Field label={t("conv.until")}>{(id) => <Input id={id} type="date" value={until} onChange={(e) => setUntil(e.target.value)} />}</Field>
        </div>
      </PageHeader>
      {usage.isPending ? <Loading /> : null}
      <ErrorNote error={usage.error} />
      {usage.data ? (
        <>
          <Period period={usage.data.period} />
          <Card title={t("usage.perDay")}>
            {usage.data.by_day.length ? <DailyChart buckets={usage.data.by_day} /> : <Empty>{t("usage.empty")}</Empty>}
          </Card>
          <div className="grid gap-4 lg:grid-cols-2">
            <Card title={t("usage.perAssistant")}>
              <Buckets buckets={usage.data.by_assistant} label={(key) => names.get(key) ?? key.slice(0, 8)} />
            </Card>
            <Card title={t("usage.perModel")}>
              <Buckets buckets={usage.data.by_model} label={(key) => key} />
            </Card>
          </div>
        </>
      ) : null}
    </div>
  );
}

function Period({ period }: { period: Schemas["PeriodUsage"] }) {
  const { t, lang } = useLang();
  const meters: [string, number, number][] = [
    [t("usage.replies"), period.replies_used, period.replies_limit],
    [t("usage.tokens"), period.tokens_used, period.tokens_limit],
  ];
  return (
    <Card title={t("usage.period", { plan: period.plan })}>
      <p className="mb-3 text-xs text-slate-500">{t("usage.resets", { date: formatDate(period.resets_at, lang) })}</p>
      <div className="grid gap-4 sm:grid-cols-2">
        {meters.map(([label, used, limit]) => (
          <div key={label}>
            <p className="text-sm">
              {label}: <strong>{used.toLocaleString(lang)}</strong> / {limit.toLocaleString(lang)}
            </p>
            <div className="mt-1 h-2 overflow-hidden rounded bg-slate-200" role="meter" aria-label={label} aria-valuemin={0} aria-valuemax={limit} aria-valuenow={used}>
              <div className={`h-full ${percent(used, limit) >= 90 ? "bg-red-600" : "bg-indigo-600"}`} style={{ width: `${percent(used, limit)}%` }} />
            </div>
          </div>
        ))}
      </div>
    </Card>
  );
}

function DailyChart({ buckets }: { buckets: Bucket[] }) {
  const { t } = useLang();
  const data = buckets.map((b) => ({ day: b.key, replies: b.replies, tokens: b.prompt_tokens + b.completion_tokens }));
  return (
    <div className="h-64" role="img" aria-label={t("usage.perDay")}>
      <ResponsiveContainer width="100%" height="100%">
        <BarChart data={data}>
          <CartesianGrid strokeDasharray="3 3" />
          <XAxis dataKey="day" fontSize={11} />
          <YAxis yAxisId="replies" fontSize={11} allowDecimals={false} />
          <YAxis yAxisId="tokens" orientation="right" fontSize={11} />
          <Tooltip />
          <Legend />
          <Bar yAxisId="replies" dataKey="replies" name={t("usage.replies")} fill="#4f46e5" />
          <Bar yAxisId="tokens" dataKey="tokens" name={t("usage.tokens")} fill="#94a3b8" />
        </BarChart>
      </ResponsiveContainer>
    </div>
  );
}

function Buckets({ buckets, label }: { buckets: Bucket[]; label: (key: string) => string }) {
  const { t, lang } = useLang();
  if (!buckets.length) return <Empty>{t("usage.empty")}</Empty>;
  return (
    <Table head={["", t("usage.replies"), t("usage.tokens"), t("usage.cost")]}>
      {buckets.map((b) => (
        <tr key={b.key}>
          <td className="px-2 py-2">{label(b.key)}</td>
          <td className="px-2 py-2">{b.replies.toLocaleString(lang)}</td>
          <td className="px-2 py-2">{(b.prompt_tokens + b.completion_tokens + b.embedding_tokens).toLocaleString(lang)}</td>
          <td className="px-2 py-2">{formatCost(b.cost_micros)}</td>
        </tr>
      ))}
    </Table>
  );
}
