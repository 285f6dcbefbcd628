import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api, unwrap, type Schemas } from "../../api/client";
import { Badge, Button, Card, CopyButton, Empty, ErrorNote, Field, Input, Loading, PageHeader, Table } from "../../components/ui";
import { useLang } from "../../i18n";
import { formatDate } from "../../lib/format";
import { LoadMore, usePaged } from "../../lib/paged";
import { canManage } from "../../lib/permissions";
import { useWorkspace } from "../../lib/workspace";
import { onSubmit } from "../auth/AuthLayout";

// The scopes an API key may carry (the API refuses members, keys and the audit log).
const SCOPES: Schemas["Permission"][] = [
  "tenant:read",
  "members:read",
  "knowledge:read",
  "knowledge:write",
  "assistants:read",
  "assistants:write",
  "chat",
  "conversations:read",
  "usage:read",
  "channels:read",
  "channels:manage",
];

export default function ApiKeys() {
  const { t, lang } = useLang();
  const { role } = useWorkspace();
  const client = useQueryClient();
  const keys = usePaged(["api-keys"], (cursor) => unwrap(api.GET("/api/v1/api-keys", { params: { query: { cursor } } })));
  const revoke = useMutation({
    mutationFn: (id: string) => unwrap(api.DELETE("/api/v1/api-keys/{key_id}", { params: { path: { key_id: id } } })),
    onSuccess: () => void client.invalidateQueries({ queryKey: ["api-keys"] }),
  });
  if (!canManage(role)) {
    return (
      <>
        <PageHeader title={t("apiKeys.title")} />
        <Empty>{t("apiKeys.adminsOnly")}</Empty>
      </>
    );
  }
  return (
    <div className="space-y-4">
      <PageHeader title={t("apiKeys.title")} />
      <NewKey />
      <Card title={t("apiKeys.list")}>
        {keys.isPending ? <Loading /> : null}
        <ErrorNote error={keys.error ?? revoke.error} />
        {keys.isSuccess && keys.items.length === 0 ? <Empty>{t("apiKeys.empty")}</Empty> : null}
        {keys.items.length ? (
          <Table head={[t("field.name"), t("apiKeys.prefix"), t("apiKeys.scopes"), t("apiKeys.lastUsed"), ""]}>
            {keys.items.map((k) => (
              <tr key={k.id}>
                <td className="px-2 py-2">{k.name}</td>
                <td className="px-2 py-2 font-mono text-xs">{k.prefix}…</td>
                <td className="px-2 py-2 text-xs">{k.scopes.join(", ")}</td>
                <td className="px-2 py-2">{k.last_used_at ? formatDate(k.last_used_at, lang) : t("apiKeys.never")}</td>
                <td className="px-2 py-2 text-right">
                  {k.revoked_at ? (
                    <Badge tone="red">{t("apiKeys.revoked")}</Badge>
                  ) : (
                    <Button variant="danger" onClick={() => revoke.mutate(k.id)}>
                      {t("revoke")}
                    </Button>
                  )}
                </td>
              </tr>
            ))}
          </Table>
        ) : null}
        <LoadMore query={keys} />
      </Card>
    </div>
  );
}

function NewKey() {
  const t = useLang().t;
  const client = useQueryClient();
  const [name, setName] = useState("");
  const [scopes, setScopes] = useState<Schemas["Permission"][]>(["knowledge:read", "assistants:read", "chat"]);
  const create = useMutation({
    mutationFn: () => unwrap(api.POST("/api/v1/api-keys", { body: { name, scopes } })),
    onSuccess: () => {
      setName("");
      void client.invalidateQueries({ queryKey: ["api-keys"] });
    },
  });
  return (
    <Card title={t("apiKeys.new")}>
      <form className="space-y-3" onSubmit={onSubmit(() => create.mutate())}>
        <Field label={t("field.name")}>
          {(id) => <Input id={id} required value={name} onChange={(e) => setName(e.target.value)} />}
        </Field>
        <fieldset>
          <legend className="text-sm font-medium text-slate-700">{t("apiKeys.scopes")}</legend>
          <div className="mt-1 grid gap-1 sm:grid-cols-3">
            {SCOPES.map((scope) => (
              <label key={scope} className="flex items-center gap-2 text-sm">
                <input
                  type="checkbox"
                  checked={scopes.includes(scope)}
                  onChange={(e) => setScopes(e.target.checked ? [...scopes, scope] : scopes.filter((s) => s !== scope))}
                />
                <span className="font-mono text-xs">{scope}</span>
              </label>
            ))}
          </div>
        </fieldset>
        <ErrorNote error={create.error} />
        <Button type="submit" disabled={create.isPending}>
          {t("apiKeys.create")}
        </Button>
      </form>
      {create.data ? (
        <div role="status" className="mt-3 space-y-2 rounded-md border border-green-200 bg-green-50 p-3 text-sm">
          <p className="font-medium">{t("apiKeys.shownOnce")}</p>
          <code className="block break-all rounded bg-white p-2 font-mono text-xs" data-testid="new-api-key">
            {create.data.key}
          </code>
          <CopyButton text={create.data.key} />
        </div>
      ) : null}
    </Card>
  );
}
