import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api, unwrap } from "../../api/client";
import { Badge, Button, Card, Empty, ErrorNote, Field, Input, Loading } from "../../components/ui";
import { useLang } from "../../i18n";
import { formatDate } from "../../lib/format";
import { onSubmit } from "../auth/AuthLayout";

export function Telegram({ assistantId, editable }: { assistantId: string; editable: boolean }) {
  const { t, lang } = useLang();
  const client = useQueryClient();
  const [token, setToken] = useState("");
  const bots = useQuery({ queryKey: ["telegram-bots"], queryFn: () => unwrap(api.GET("/api/v1/telegram/bots", { params: { query: { limit: 200 } } })) });
  const changed = () => void client.invalidateQueries({ queryKey: ["telegram-bots"] });
  const connect = useMutation({
    mutationFn: () => unwrap(api.POST("/api/v1/telegram/bots", { body: { token: token.trim(), assistant_id: assistantId } })),
    onSuccess: () => {
      setToken("");
      changed();
    },
  });
  const disconnect = useMutation({
    mutationFn: (id: string) => unwrap(api.DELETE("/api/v1/telegram/bots/{bot_id}", { params: { path: { bot_id: id } } })),
    onSuccess: changed,
  });
  const mine = (bots.data?.items ?? []).filter((b) => b.assistant_id === assistantId);
  return (
    <Card title="Telegram">
      {bots.isPending ? <Loading /> : null}
      <ErrorNote error={bots.error ?? disconnect.error} />
      {bots.isSuccess && mine.length === 0 ? <Empty>{t("telegram.none")}</Empty> : null}
      <ul className="divide-y divide-slate-100">
        {mine.map((bot) => (
          <li key={bot.id} className="flex flex-wrap items-center justify-between gap-2 py-3 text-sm">
            <div>
              <p className="font-medium">
                @{bot.username} <Badge tone={bot.status === "active" ? "green" : "red"}>{bot.status}</Badge>
              </p>
              {bot.disabled_reason ? <p className="text-xs text-red-700">{bot.disabled_reason}</p> : null}
              <p className="text-xs text-slate-500">
                {bot.last_error ? t("telegram.lastError", { error: bot.last_error, date: formatDate(bot.last_error_at, lang) }) : t("telegram.noErrors")}
              </p>
            </div>
            {editable ? (
              <Button variant="danger" onClick={() => disconnect.mutate(bot.id)}>
                {t("telegram.disconnect")}
              </Button>
            ) : null}
          </li>
        ))}
      </ul>
      {editable ? (
        <form className="mt-3 flex flex-wrap items-end gap-3" onSubmit={onSubmit(() => connect.mutate())}>
          <div className="min-w-64 flex-1">
            <Field label={t("telegram.token")} hint={t("telegram.tokenHint")}>
              {(id) => <Input id={id} required autoComplete="off" value={token} onChange={(e) => setToken(e.target.value)} />}
            </Field>
          </div>
          <Button type="submit" disabled={connect.isPending}>
            {t("telegram.connect")}
          </Button>
          <div className="w-full">
            <ErrorNote error={connect.error} />
          </div>
        </form>
      ) : null}
    </Card>
  );
}
