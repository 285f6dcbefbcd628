// The assistant editor's form: text fields as a person types them, and the PATCH body built
// from only what changed (so a save never overwrites a setting someone else just edited).
import type { Schemas } from "../api/client";

type Assistant = Schemas["AssistantRead"];
export type AssistantPatch = Schemas["AssistantUpdate"];

export interface AssistantDraft {
  name: string;
  instructions: string;
  provider: Schemas["ModelProvider"];
  model: string;
  temperature: string;
  max_answer_tokens: string;
  knowledge_base_ids: string[];
  top_k: string;
  threshold: string;
  welcome_message: string;
  suggested_questions: string;
  fallback_message: string;
  language: "en" | "ru";
  visitor_daily_message_cap: string;
}

export function draftOf(a: Assistant): AssistantDraft {
  return {
    name: a.name,
    instructions: a.instructions,
    provider: a.provider,
    model: a.model ?? "",
    temperature: String(a.temperature),
    max_answer_tokens: String(a.max_answer_tokens),
    knowledge_base_ids: [...a.knowledge_base_ids],
    top_k: String(a.top_k),
    threshold: a.threshold === null ? "" : String(a.threshold),
    welcome_message: a.welcome_message ?? "",
    suggested_questions: a.suggested_questions.join("\n"),
    fallback_message: a.fallback_message,
    language: a.language === "ru" ? "ru" : "en",
    visitor_daily_message_cap: a.visitor_daily_message_cap === null ? "" : String(a.visitor_daily_message_cap),
  };
}

const orNull = (text: string): string | null => (text.trim() ? text : null);
const numberOrNull = (text: string): number | null => (text.trim() === "" ? null : Number(text));

/** The API's values for a draft: blank optional fields become null, lists are split by line. */
function valuesOf(d: AssistantDraft): AssistantPatch {
  return {
    name: d.name,
    instructions: d.instructions,
    provider: d.provider,
    model: orNull(d.model),
    temperature: Number(d.temperature),
    max_answer_tokens: Number(d.max_answer_tokens),
    knowledge_base_ids: d.knowledge_base_ids,
    top_k: Number(d.top_k),
    threshold: numberOrNull(d.threshold),
    welcome_message: orNull(d.welcome_message),
    suggested_questions: d.suggested_questions
      .split("\n")
      .map((q) => q.trim())
      .filter(Boolean),
    fallback_message: d.fallback_message,
    language: d.language,
    visitor_daily_message_cap: numberOrNull(d.visitor_daily_message_cap),
  };
}

export function changedFields(original: Assistant, draft: AssistantDraft): AssistantPatch {
  const before = valuesOf(draftOf(original)) as Record<string, unknown>;
  const after = valuesOf(draft) as Record<string, unknown>;
  const patch: Record<string, unknown> = {};
  for (const key of Object.keys(after)) {
    if (JSON.stringify(before[key]) !== JSON.stringify(after[key])) patch[key] = after[key];
  }
  return patch as AssistantPatch;
}
