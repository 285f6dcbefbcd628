// Asking an assistant with a streamed answer: POST with stream=true, deltas as they come, and
// the final reply (citations, tokens, latency, cost) from the `done` event.
import type { Schemas } from "../api/client";
import { authedFetch, errorFrom } from "../auth/session";
import { readSse } from "./sse";

export type Reply = Schemas["ReplyRead"];

export async function askStreaming(conversationId: string, content: string, onDelta: (text: string) => void): Promise<Reply> {
  const request = new Request(`/api/v1/conversations/${conversationId}/messages`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
    body: JSON.stringify({ content, stream: true }),
  });
  const response = await authedFetch(request);
  if (!response.ok || !response.body) throw await errorFrom(response);
  let reply: Reply | null = null;
  for await (const event of readSse(response.body)) {
    if (event.event === "delta") onDelta((JSON.parse(event.data) as { text: string }).text);
    else if (event.event === "done") reply = JSON.parse(event.data) as Reply;
  }
  if (!reply) throw new Error("The answer stopped before it was complete.");
  return reply;
}

/** Splits an answer into text and [n] citation markers, to render the markers as links. */
export function splitCitations(text: string): (string | number)[] {
  const parts: (string | number)[] = [];
  let last = 0;
  for (const match of text.matchAll(/\[(\d{1,2})\]/g)) {
    const at = match.index ?? 0;
    if (at > last) parts.push(text.slice(last, at));
    parts.push(Number(match[1]));
    last = at + match[0].length;
  }
  if (last < text.length) parts.push(text.slice(last));
  return parts;
}
