import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { useNavigate } from "react-router";
import { api, unwrap } from "../../api/client";
import { chooseWorkspace } from "../../auth/session";
import { Button, Card, ErrorNote, Field, Input, PageHeader } from "../../components/ui";
import { useT } from "../../i18n";
import { onSubmit } from "../auth/AuthLayout";

/** A slug from a name: lower-case latin letters, digits and dashes, as the API wants. */
export function slugify(name: string): string {
  return name
    .toLowerCase()
    .normalize("NFKD")
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 63)
    .replace(/-+$/g, "");
}

export default function NewWorkspace() {
  const t = useT();
  const navigate = useNavigate();
  const client = useQueryClient();
  const [name, setName] = useState("");
  const [slug, setSlug] = useState("");
  const [slugTouched, setSlugTouched] = useState(false);
  const shownSlug = slugTouched ? slug : slugify(name);
  const create = useMutation({
    mutationFn: () => unwrap(api.POST("/api/v1/tenants", { body: { name, slug: shownSlug } })),
    onSuccess: async (tenant) => {
      chooseWorkspace(tenant.id);
      client.removeQueries({ predicate: (q) => q.queryKey[0] !== "me" });
      await client.invalidateQueries({ queryKey: ["me"] });
      navigate("/");
    },
  });
  return (
    <div className="max-w-lg">
      <PageHeader title={t("workspace.new")} />
      <Card>
        <p className="mb-3 text-sm text-slate-600">{t("workspace.newHint")}</p>
        <form className="space-y-3" onSubmit={onSubmit(() => create.mutate())}>
          <Field label={t("field.name")}>
            {(id) => <Input id={id} required value={name} onChange={(e) => setName(e.target.value)} />}
          </Field>
          <Field label={t("field.slug")} hint={t("workspace.slugHint")}>
            {(id) => (
              <Input
                id={id}
                required
                pattern="[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
                value={shownSlug}
                onChange={(e) => {
                  setSlugTouched(true);
                  setSlug(e.target.value);
                }}
              />
            )}
          </Field>
          <ErrorNote error={create.error} />
          <Button type="submit" disabled={create.isPending}>
            {t("workspace.create")}
          </Button>
        </form>
      </Card>
    </div>
  );
}
