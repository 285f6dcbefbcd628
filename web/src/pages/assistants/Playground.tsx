import { useMutation } from "@tanstack/react-query";
import { useRef, useState } from "react";
import { api, unwrap, type Schemas } from "../../api/client";
import { Answer, citationsOf } from "../../components/Answer";
import { Button, Card, ErrorNote, Textarea } from "../../components/ui";
import { useT } from "../../i18n";
import { askStreaming, type Reply } from "../../lib/ask";
import { formatCost } from "../../lib/format";
import { onSubmit } from "../auth/AuthLayout";

interface Turn {
  question: string;
  text: string;
  reply?: Reply;
}

/** Try the assistant as it is saved: streamed answers, and what went into each one. */
export function Playground({ assistant }: { assistant: Schemas["AssistantRead"] }) {
  const t = useT();
  const conversation = useRef<string | null>(null);
  const [turns, setTurns] = useState<Turn[]>([]);
  const [question, setQuestion] = useState("");
  const update = (change: (turn: Turn) => Turn) => setTurns((all) => [...all.slice(0, -1), change(all[all.length - 1] as Turn)]);
  const ask = useMutation({
    mutationFn: async (content: string) => {
      if (!conversation.current) {
        const created = await unwrap(api.POST("/api/v1/conversations", { body: { assistant_id: assistant.id, title: "Playground" } }));
        conversation.current = created.id;
      }
      setTurns((all) => [...all, { question: content, text: "" }]);
      const reply = await askStreaming(conversation.current, content, (delta) => update((turn) => ({ ...turn, text: turn.text + delta })));
      update((turn) => ({ ...turn, text: reply.answer.content, reply }));
    },
  });
  const send = (content: string) => {
    if (!content.trim() || ask.isPending) return;
    setQuestion("");
    ask.mutate(content.trim());
  };
  const last = turns[turns.length - 1];
  return (
    <div className="space-y-4">
      <Card
        title={t("playground.title")}
        actions={
          <Button
            variant="ghost"
            onClick={() => {
              conversation.current = null;
              setTurns([]);
            }}
          >
            {t("playground.reset")}
          </Button>
        }
      >
        <div className="max-h-[28rem] space-y-3 overflow-y-auto" aria-live="polite" data-testid="playground-log">
          {turns.length === 0 ? (
            <div className="text-sm text-slate-500">
              <p>{assistant.welcome_message ?? t("playground.hint")}</p>
              <div className="mt-2 flex flex-wrap gap-2">
                {assistant.suggested_questions.map((q) => (
                  <Button key={q} variant="secondary" onClick={() => send(q)}>
                    {q}
                  </Button>
                ))}
              </div>
            </div>
          ) : null}
          {turns.map((turn, i) => (
            <div key={i} className="space-y-2 text-sm">
              <p className="ml-8 rounded-md bg-indigo-50 p-2">{turn.question}</p>
              <div className="mr-8 rounded-md bg-slate-100 p-2 playground-answer">
                <Answer text={turn.text || "…"} citations={citationsOf(turn.reply?.answer.citations ?? [])} />
              </div>
            </div>
          ))}
        </div>
        <form className="mt-3 flex gap-2" onSubmit={onSubmit(() => send(question))}>
          <label htmlFor="playground-question" className="sr-only">
            {t("playground.question")}
          </label>
          <Textarea
            id="playground-question"
            rows={2}
            value={question}
            placeholder={t("playground.question")}
            onChange={(e) => setQuestion(e.target.value)}
            onKeyDown={(e) => {
              if (e.key === "Enter" && !e.shiftKey) {
                e.preventDefault();
                send(question);
              }
            }}
          />
          <Button type="submit" disabled={ask.isPending || !question.trim()}>
            {t("playground.send")}
          </Button>
        </form>
        <div className="mt-2">
          <ErrorNote error={ask.error} />
        </div>
      </Card>
      {last?.reply ? <DebugPanel reply={last.reply} /> : null}
    </div>
  );
}

function DebugPanel({ reply }: { reply: Reply }) {
  const t = useT();
  const answer = reply.answer;
  const meta = answer.metadata as Record<string, unknown>;
  const number = (key: string) => (typeof meta[key] === "number" ? `${meta[key] as number} ms` : "—");
  const rows: [string, string][] = [
    [t("debug.generator"), String(meta.generator ?? "—")],
    [t("debug.model"), answer.model ?? "—"],
    [t("debug.tokens"), t("debug.tokenCounts", { prompt: answer.prompt_tokens, completion: answer.completion_tokens })],
    [t("debug.cost"), formatCost(reply.cost_micros ?? 0)],
    [t("debug.latency"), answer.latency_ms === null ? "—" : `${answer.latency_ms} ms`],
    [t("debug.firstToken"), number("first_token_ms")],
    [t("debug.retrieval"), number("retrieval_ms")],
  ];
  if (typeof meta.fallback_reason === "string") rows.push([t("debug.fallback"), meta.fallback_reason]);
  if (typeof meta.error === "string") rows.push([t("debug.error"), meta.error]);
  const passages = citationsOf(answer.citations);
  return (
    <Card title={t("debug.title")}>
      <dl className="grid grid-cols-[auto_1fr] gap-x-4 gap-y-1 text-sm" data-testid="debug-panel">
        {rows.map(([label, value]) => (
          <div key={label} className="contents">
            <dt className="text-slate-500">{label}</dt>
            <dd className="font-mono text-xs leading-5">{value}</dd>
          </div>
        ))}
      </dl>
      <h3 className="mt-3 text-sm font-semibold">{t("debug.passages")}</h3>
      {passages.length === 0 ? <p className="text-sm text-slate-500">{t("debug.noPassages")}</p> : null}
      <ol className="mt-1 space-y-2 text-xs">
        {passages.map((p) => (
          <li key={p.number} className="rounded border border-slate-200 p-2">
            <p className="font-medium">
              [{p.number}] {p.title ?? p.filename ?? ""} · {t("debug.score")} {p.score?.toFixed(3)}
            </p>
            <p className="mt-1 whitespace-pre-wrap text-slate-600">{p.passage}</p>
          </li>
        ))}
      </ol>
    </Card>
  );
}
