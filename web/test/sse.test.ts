import { describe, expect, it } from "vitest";
import { parseBlock, readSse } from "../src/lib/sse";

function streamOf(chunks: string[]): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(encoder.encode(chunk));
      controller.close();
    },
  });
}

async function collect(chunks: string[]) {
  const events = [];
  for await (const event of readSse(streamOf(chunks))) events.push(event);
  return events;
}

describe("readSse", () => {
  it("reads events split anywhere across chunks", async () => {
    const events = await collect(['event: delta\ndata: {"te', 'xt":"Hel"}\n', '\nevent: delta\ndata: {"text":"lo"}\n\nevent: done\ndata: {}\n\n']);
    expect(events).toEqual([
      { event: "delta", data: '{"text":"Hel"}' },
      { event: "delta", data: '{"text":"lo"}' },
      { event: "done", data: "{}" },
    ]);
  });

  it("keeps a multi-byte character cut between chunks", async () => {
    const bytes = new TextEncoder().encode("data: Привет\n\n");
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(bytes.slice(0, 8));
        controller.enqueue(bytes.slice(8));
        controller.close();
      },
    });
    const events = [];
    for await (const event of readSse(stream)) events.push(event);
    expect(events).toEqual([{ event: "message", data: "Привет" }]);
  });
});

describe("parseBlock", () => {
  it("ignores comments and joins data lines", () => {
    expect(parseBlock(": ping\ndata: a\ndata: b")).toEqual({ event: "message", data: "a\nb" });
    expect(parseBlock(": keep-alive")).toBeNull();
  });
});
