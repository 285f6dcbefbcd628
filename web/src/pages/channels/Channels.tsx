import { useSearchParams } from "react-router";
import { Empty, ErrorNote, Loading, PageHeader } from "../../components/ui";
import { AssistantPicker } from "../../components/AssistantPicker";
import { useT } from "../../i18n";
import { canManage } from "../../lib/permissions";
import { useWorkspace } from "../../lib/workspace";
import { useAssistants } from "../assistants/AssistantList";
import { useAssistant } from "../assistants/AssistantEditor";
import { Telegram } from "./Telegram";
import { Widget } from "./Widget";

export default function Channels() {
  const t = useT();
  const { role } = useWorkspace();
  const [params, setParams] = useSearchParams();
  const assistants = useAssistants();
  const chosen = params.get("assistant") ?? assistants.items[0]?.id ?? "";
  if (assistants.isPending) return <Loading />;
  return (
    <div className="space-y-4">
      <PageHeader title={t("channels.title")}>
        {assistants.items.length ? (
          <div className="w-64">
            <AssistantPicker assistants={assistants.items} value={chosen} onChange={(id) => setParams({ assistant: id })} />
          </div>
        ) : null}
      </PageHeader>
      <ErrorNote error={assistants.error} />
      {assistants.isSuccess && !assistants.items.length ? <Empty>{t("channels.noAssistant")}</Empty> : null}
      {chosen ? <ChannelsOf assistantId={chosen} editable={canManage(role)} /> : null}
    </div>
  );
}

function ChannelsOf({ assistantId, editable }: { assistantId: string; editable: boolean }) {
  const assistant = useAssistant(assistantId);
  if (assistant.isPending) return <Loading />;
  if (!assistant.data) return <ErrorNote error={assistant.error} />;
  return (
    <>
      <Widget key={assistant.data.id} assistant={assistant.data} editable={editable} />
      <Telegram assistantId={assistant.data.id} editable={editable} />
    </>
  );
}
