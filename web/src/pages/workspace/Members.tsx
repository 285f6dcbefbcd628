import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api, unwrap } from "../../api/client";
import { Badge, Button, Card, CopyButton, Empty, ErrorNote, Field, Input, Loading, PageHeader, Select, Table } from "../../components/ui";
import { useLang } from "../../i18n";
import type { MessageKey } from "../../i18n/messages";
import { formatDate } from "../../lib/format";
import { canManage, ROLES, type Role } from "../../lib/permissions";
import { useWorkspace } from "../../lib/workspace";
import { onSubmit } from "../auth/AuthLayout";

export default function Members() {
  const { t, lang } = useLang();
  const { role, me } = useWorkspace();
  const manager = canManage(role);
  const client = useQueryClient();
  const members = useQuery({ queryKey: ["members"], queryFn: () => unwrap(api.GET("/api/v1/members")) });
  const changed = () => void client.invalidateQueries({ queryKey: ["members"] });
  const setRole = useMutation({
    mutationFn: (v: { id: string; role: Role }) =>
      unwrap(api.PATCH("/api/v1/members/{member_id}", { params: { path: { member_id: v.id } }, body: { role: v.role } })),
    onSuccess: changed,
  });
  const remove = useMutation({
    mutationFn: (id: string) => unwrap(api.DELETE("/api/v1/members/{member_id}", { params: { path: { member_id: id } } })),
    onSuccess: changed,
  });
  return (
    <div className="space-y-4">
      <PageHeader title={t("members.title")} />
      {manager ? <Invitations /> : null}
      <Card title={t("members.list")}>
        {members.isPending ? <Loading /> : null}
        <ErrorNote error={members.error ?? setRole.error ?? remove.error} />
        {members.data ? (
          <Table head={[t("field.email"), t("field.role"), t("members.since"), ""]}>
            {members.data.map((m) => (
              <tr key={m.id}>
                <td className="px-2 py-2">
                  {m.email}
                  {m.full_name ? <span className="block text-xs text-slate-500">{m.full_name}</span> : null}
                </td>
                <td className="px-2 py-2">
                  {manager && m.user_id !== me?.id ? (
                    <Select
                      aria-label={t("members.roleOf", { email: m.email })}
                      value={m.role}
                      onChange={(e) => setRole.mutate({ id: m.id, role: e.target.value as Role })}
                    >
                      {ROLES.map((r) => (
                        <option key={r} value={r}>
                          {t(`role.${r}` as MessageKey)}
                        </option>
                      ))}
                    </Select>
                  ) : (
                    <Badge>{t(`role.${m.role}` as MessageKey)}</Badge>
                  )}
                </td>
                <td className="px-2 py-2">{formatDate(m.created_at, lang)}</td>
                <td className="px-2 py-2 text-right">
                  {manager && m.user_id !== me?.id ? (
                    <Button
                      variant="danger"
                      onClick={() => {
                        if (window.confirm(t("members.confirmRemove", { email: m.email }))) remove.mutate(m.id);
                      }}
                    >
                      {t("remove")}
                    </Button>
                  ) : null}
                </td>
              </tr>
            ))}
          </Table>
        ) : null}
      </Card>
    </div>
  );
}

function Invitations() {
  const { t, lang } = useLang();
  const client = useQueryClient();
  const [email, setEmail] = useState("");
  const [role, setRole] = useState<Role>("agent");
  const invitations = useQuery({ queryKey: ["invitations"], queryFn: () => unwrap(api.GET("/api/v1/invitations")) });
  const invite = useMutation({
    mutationFn: () => unwrap(api.POST("/api/v1/invitations", { body: { email, role } })),
    onSuccess: () => {
      setEmail("");
      void client.invalidateQueries({ queryKey: ["invitations"] });
    },
  });
  const revoke = useMutation({
    mutationFn: (id: string) =>
      unwrap(api.DELETE("/api/v1/invitations/{invitation_id}", { params: { path: { invitation_id: id } } })),
    onSuccess: () => void client.invalidateQueries({ queryKey: ["invitations"] }),
  });
  const pending = (invitations.data ?? []).filter((i) => !i.accepted_at && !i.revoked_at);
  return (
    <Card title={t("invite.title")}>
      <form className="grid gap-3 sm:grid-cols-[1fr_10rem_auto] sm:items-end" onSubmit={onSubmit(() => invite.mutate())}>
        <Field label={t("field.email")}>
          {(id) => <Input id={id} type="email" required value={email} onChange={(e) => setEmail(e.target.value)} />}
        </Field>
        <Field label={t("field.role")}>
          {(id) => (
            <Select id={id} value={role} onChange={(e) => setRole(e.target.value as Role)}>
              {ROLES.filter((r) => r !== "owner").map((r) => (
                <option key={r} value={r}>
                  {t(`role.${r}` as MessageKey)}
                </option>
              ))}
            </Select>
          )}
        </Field>
        <Button type="submit" disabled={invite.isPending}>
          {t("invite.send")}
        </Button>
      </form>
      <ErrorNote error={invite.error ?? revoke.error ?? invitations.error} />
      {invite.data ? (
        <div role="status" className="mt-3 flex flex-wrap items-center gap-2 rounded-md bg-green-50 p-3 text-sm">
          <span>{t("invite.sent", { email: invite.data.email })}</span>
          <CopyButton text={invite.data.accept_url} label={t("invite.copyLink")} />
        </div>
      ) : null}
      {pending.length ? (
        <ul className="mt-3 divide-y divide-slate-100 text-sm">
          {pending.map((i) => (
            <li key={i.id} className="flex flex-wrap items-center justify-between gap-2 py-2">
              <span>
                {i.email} · {t(`role.${i.role}` as MessageKey)} · {t("invite.expires", { date: formatDate(i.expires_at, lang) })}
              </span>
              <Button variant="danger" onClick={() => revoke.mutate(i.id)}>
                {t("revoke")}
              </Button>
            </li>
          ))}
        </ul>
      ) : (
        <div className="mt-3">
          <Empty>{t("invite.none")}</Empty>
        </div>
      )}
    </Card>
  );
}
