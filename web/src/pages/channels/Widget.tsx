import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { api, unwrap, type Schemas } from "../../api/client";
import { Button, Card, CopyButton, ErrorNote, Field, Input, Select, Textarea } from "../../components/ui";
import { useT } from "../../i18n";
import { widgetSnippet } from "../../lib/format";
import { onSubmit } from "../auth/AuthLayout";

type Assistant = Schemas["AssistantRead"];
type Appearance = Schemas["Appearance"];

export function previewUrl(publicKey: string, appearance: Appearance): string {
  const hash = new URLSearchParams({ key: publicKey, appearance: JSON.stringify(appearance) });
  return `/app/widget-preview.html#${hash.toString()}`;
}

/** Origins typed one per line, without trailing slashes, as the API wants them. */
export function parseOrigins(text: string): string[] {
  return text
    .split(/[\s,]+/)
    .map((o) => o.trim().replace(/\/+$/, ""))
    .filter(Boolean);
}

function useSaveAssistant(id: string) {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (body: Schemas["AssistantUpdate"]) =>
      unwrap(api.PATCH("/api/v1/assistants/{assistant_id}", { params: { path: { assistant_id: id } }, body })),
    onSuccess: (saved) => client.setQueryData(["assistant", id], saved),
  });
}

export function Widget({ assistant, editable }: { assistant: Assistant; editable: boolean }) {
  const t = useT();
  const snippet = widgetSnippet(window.location.origin, assistant.public_key);
  return (
    <div className="space-y-4">
      <Card title={t("widget.install")}>
        <p className="mb-2 text-sm text-slate-600">{t("widget.installHint")}</p>
        <pre className="overflow-x-auto rounded bg-slate-900 p-3 text-xs text-slate-100" data-testid="widget-snippet">
          {snippet}
        </pre>
        <div className="mt-2">
          <CopyButton text={snippet} label={t("widget.copy")} />
        </div>
      </Card>
      <AppearanceEditor assistant={assistant} editable={editable} />
      <div className="grid gap-4 lg:grid-cols-2">
        <Origins assistant={assistant} editable={editable} />
        <IdentitySecret assistant={assistant} editable={editable} />
      </div>
    </div>
  );
}

function AppearanceEditor({ assistant, editable }: { assistant: Assistant; editable: boolean }) {
  const t = useT();
  const [looks, setLooks] = useState<Appearance>(assistant.appearance);
  const [shown, setShown] = useState<Appearance>(assistant.appearance);
  const save = useSaveAssistant(assistant.id);
  // The preview reloads the real widget: wait until typing pauses.
  useEffect(() => {
    const timer = window.setTimeout(() => setShown(looks), 400);
    return () => window.clearTimeout(timer);
  }, [looks]);
  const set = (key: keyof Appearance, value: string) => setLooks((l) => ({ ...l, [key]: value === "" ? null : value }));
  return (
    <Card title={t("widget.appearance")}>
      <div className="grid gap-4 lg:grid-cols-2">
        <form className="space-y-3" onSubmit={onSubmit(() => save.mutate({ appearance: looks }))}>
          <fieldset disabled={!editable} className="space-y-3">
            <Field label={t("widget.titleField")}>{(id) => <Input id={id} value={looks.title ?? ""} placeholder={assistant.name} onChange={(e) => set("title", e.target.value)} />}</Field>
            <div className="grid grid-cols-2 gap-3">
              <Field label={t("widget.primary")}>
                {(id) => <Input id={id} type="color" value={looks.primary_color ?? "#2563eb"} onChange={(e) => set("primary_color", e.target.value)} />}
              </Field>
              <Field label={t("widget.text")}>
                {(id) => <Input id={id} type="color" value={looks.text_color ?? "#ffffff"} onChange={(e) => set("text_color", e.target.value)} />}
              </Field>
              <Field label={t("widget.position")}>
                {(id) => (
                  <Select id={id} value={looks.position ?? "right"} onChange={(e) => set("position", e.target.value)}>
                    <option value="right">{t("widget.right")}</option>
                    <option value="left">{t("widget.left")}</option>
                  </Select>
                )}
              </Field>
              <Field label={t("widget.icon")}>
                {(id) => (
                  <Select id={id} value={looks.launcher_icon ?? "chat"} onChange={(e) => set("launcher_icon", e.target.value)}>
                    <option value="chat">chat</option>
                    <option value="help">help</option>
                    <option value="message">message</option>
                  </Select>
                )}
              </Field>
            </div>
            <Field label={t("widget.avatar")}>{(id) => <Input id={id} type="url" value={looks.avatar_url ?? ""} onChange={(e) => set("avatar_url", e.target.value)} />}</Field>
            <Field label={t("widget.greeting")}>{(id) => <Input id={id} value={looks.greeting ?? ""} onChange={(e) => set("greeting", e.target.value)} />}</Field>
          </fieldset>
          <ErrorNote error={save.error} />
          {save.isSuccess ? <p role="status" className="text-sm text-green-700">{t("saved")}</p> : null}
          {editable ? <Button type="submit" disabled={save.isPending}>{t("save")}</Button> : <p className="text-sm text-slate-500">{t("readOnly")}</p>}
        </form>
        <div>
          <p className="mb-1 text-xs text-slate-500">{t("widget.preview")}</p>
          <iframe title={t("widget.preview")} className="h-[32rem] w-full rounded border border-slate-200" src={previewUrl(assistant.public_key, shown)} />
        </div>
      </div>
    </Card>
  );
}

function Origins({ assistant, editable }: { assistant: Assistant; editable: boolean }) {
  const t = useT();
  const [text, setText] = useState(assistant.allowed_origins.join("\n"));
  const [anywhere, setAnywhere] = useState(assistant.allow_all_origins);
  const save = useSaveAssistant(assistant.id);
  return (
    <Card title={t("widget.origins")}>
      <form className="space-y-3" onSubmit={onSubmit(() => save.mutate({ allowed_origins: parseOrigins(text), allow_all_origins: anywhere }))}>
        <fieldset disabled={!editable} className="space-y-3">
          <Field label={t("widget.originsField")} hint={t("widget.originsHint")}>
            {(id) => <Textarea id={id} rows={4} value={text} placeholder="https://shop.example.com" onChange={(e) => setText(e.target.value)} />}
          </Field>
          <label className="flex items-center gap-2 text-sm">
            <input type="checkbox" checked={anywhere} onChange={(e) => setAnywhere(e.target.checked)} />
            {t("widget.anywhere")}
          </label>
        </fieldset>
        <ErrorNote error={save.error} />
        {save.isSuccess ? <p role="status" className="text-sm text-green-700">{t("saved")}</p> : null}
        {editable ? <Button type="submit" disabled={save.isPending}>{t("save")}</Button> : null}
      </form>
    </Card>
  );
}

function IdentitySecret({ assistant, editable }: { assistant: Assistant; editable: boolean }) {
  const t = useT();
  const client = useQueryClient();
  const [shown, setShown] = useState(false);
  const path = { params: { path: { assistant_id: assistant.id } } };
  const secret = useQuery({
    queryKey: ["identity-secret", assistant.id],
    queryFn: () => unwrap(api.GET("/api/v1/assistants/{assistant_id}/identity-secret", path)),
    enabled: shown,
  });
  const rotate = useMutation({
    mutationFn: () => unwrap(api.POST("/api/v1/assistants/{assistant_id}/rotate-identity-secret", path)),
    onSuccess: (fresh) => client.setQueryData(["identity-secret", assistant.id], fresh),
  });
  const rotateKey = useMutation({
    mutationFn: () => unwrap(api.POST("/api/v1/assistants/{assistant_id}/rotate-public-key", path)),
    onSuccess: (saved) => client.setQueryData(["assistant", assistant.id], saved),
  });
  return (
    <Card title={t("widget.identity")}>
      <p className="mb-2 text-sm text-slate-600">{t("widget.identityHint")}</p>
      {editable ? (
        <div className="space-y-2">
          {shown && secret.data ? (
            <code className="block break-all rounded bg-slate-100 p-2 font-mono text-xs">{secret.data.identity_secret}</code>
          ) : (
            <Button variant="secondary" onClick={() => setShown(true)}>
              {t("widget.reveal")}
            </Button>
          )}
          <div className="flex flex-wrap gap-2">
            <Button
              variant="danger"
              onClick={() => {
                if (window.confirm(t("widget.confirmRotate"))) {
                  setShown(true);
                  rotate.mutate();
                }
              }}
            >
              {t("widget.rotateSecret")}
            </Button>
            <Button
              variant="danger"
              onClick={() => {
                if (window.confirm(t("widget.confirmRotateKey"))) rotateKey.mutate();
              }}
            >
              {t("widget.rotateKey")}
            </Button>
          </div>
        </div>
      ) : (
        <p className="text-sm text-slate-500">{t("readOnly")}</p>
      )}
      <ErrorNote error={secret.error ?? rotate.error ?? rotateKey.error} />
    </Card>
  );
}
