import { useQuery } from "@tanstack/react-query";
import { useParams } from "react-router";
import { api, unwrap } from "../../api/client";
import { ApiError } from "../../auth/session";
import { ErrorNote, Loading, PageHeader } from "../../components/ui";
import { useT } from "../../i18n";
import { canManage } from "../../lib/permissions";
import { useWorkspace } from "../../lib/workspace";
import { NotFoundNote } from "../NotFound";
import { Documents } from "./Documents";
import { SearchTester } from "./SearchTester";
import { Sources } from "./Sources";
import { Upload } from "./Upload";

export default function KnowledgeBase() {
  const t = useT();
  const { kbId = "" } = useParams();
  const { role } = useWorkspace();
  const kb = useQuery({
    queryKey: ["knowledge-base", kbId],
    queryFn: () => unwrap(api.GET("/api/v1/knowledge-bases/{kb_id}", { params: { path: { kb_id: kbId } } })),
  });
  if (kb.isPending) return <Loading />;
  if (kb.error instanceof ApiError && (kb.error.status === 404 || kb.error.status === 422)) {
    return <NotFoundNote message={t("kb.notFound")} />;
  }
  if (!kb.data) return <ErrorNote error={kb.error} />;
  const stats = kb.data.stats;
  const editable = canManage(role);
  return (
    <div className="space-y-4">
      <PageHeader title={kb.data.name}>
        <p className="text-sm text-slate-500">
          {t("kb.stats", { ready: stats.documents.ready ?? 0, chunks: stats.chunks })} · {kb.data.embedding_model}
        </p>
      </PageHeader>
      {editable ? <Upload kbId={kbId} /> : null}
      <Documents kbId={kbId} editable={editable} />
      <Sources kbId={kbId} editable={editable} />
      <SearchTester kbId={kbId} />
    </div>
  );
}
