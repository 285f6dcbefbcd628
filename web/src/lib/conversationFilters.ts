// The conversation list's filters, kept in the URL so a filtered list can be shared or reloaded.

export interface ConversationFilters {
  q: string;
  assistant_id: string;
  channel: "" | "api" | "widget" | "telegram";
  feedback: "" | "up" | "down";
  since: string;
  until: string;
}

export const FILTER_NAMES = ["q", "assistant_id", "channel", "feedback", "since", "until"] as const;

export function filtersFrom(params: URLSearchParams): ConversationFilters {
  const channel = params.get("channel");
  const feedback = params.get("feedback");
  return {
    q: params.get("q") ?? "",
    assistant_id: params.get("assistant_id") ?? "",
    channel: channel === "api" || channel === "widget" || channel === "telegram" ? channel : "",
    feedback: feedback === "up" || feedback === "down" ? feedback : "",
    since: params.get("since") ?? "",
    until: params.get("until") ?? "",
  };
}

export type ConversationQuery = { [K in keyof ConversationFilters]?: Exclude<ConversationFilters[K], ""> };

/** The API's query: only the filters that are set. */
export function queryOf(filters: ConversationFilters): ConversationQuery {
  const query: Record<string, string> = {};
  for (const name of FILTER_NAMES) {
    const value = filters[name].trim();
    if (value) query[name] = value;
  }
  return query as ConversationQuery;
}
