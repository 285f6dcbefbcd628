import { describe, expect, it } from "vitest";

import {
  addOutgoing,
  applyEvent,
  backoffCeiling,
  backoffDelay,
  emptyConversation,
  newClientId,
  outboxFrames,
  parseServerEvent,
  retryOutgoing,
} from "../src/protocol";
import type { Conversation, ServerEvent, ServerMessage } from "../src/protocol";

const message = (over: Partial<ServerMessage> = {}): ServerMessage => ({
  id: "m1",
  role: "assistant",
  text: "",
  status: "complete",
  citations: [],
  client_id: null,
  created_at: "2026-01-01T00:00:00Z",
  ...over,
});

const ready = (over: Partial<Extract<ServerEvent, { type: "ready" }>> = {}): ServerEvent => ({
  type: "ready",
  conversation_id: "c1",
  visitor_id: "v1",
  last_seq: 0,
  ...over,
});

function run(events: ServerEvent[], start: Conversation = emptyConversation("c1")) {
  let conversation = start;
  const finished: string[] = [];
  for (const event of events) {
    const applied = applyEvent(conversation, event);
    conversation = applied.conversation;
    finished.push(...applied.finished.map((m) => `${m.role}:${m.text}`));
  }
  return { conversation, finished };
}

const texts = (c: Conversation) => c.messages.map((m) => `${m.role}:${m.text}:${m.status}`);

describe("applying server events", () => {
  it("applies a whole exchange in order", () => {
    const { conversation, finished } = run([
      ready({ history: [] }),
      { type: "message", seq: 1, message: message({ id: "u1", role: "user", text: "Hi", client_id: "k1" }) },
      { type: "typing", seq: 2, message_id: "a1" },
      { type: "delta", seq: 3, message_id: "a1", text: "Hel" },
      { type: "delta", seq: 4, message_id: "a1", text: "lo" },
      {
        type: "complete",
        seq: 5,
        message: message({
          id: "a1",
          text: "Hello [1]",
          citations: [{ number: 1, title: "Hours", url: "https://x.test/h", headingPath: [] }],
        }),
      },
    ]);
    expect(texts(conversation)).toEqual(["user:Hi:complete", "assistant:Hello [1]:complete"]);
    expect(conversation.lastSeq).toBe(5);
    expect(conversation.typing).toBeNull();
    expect(conversation.messages[1]?.citations).toHaveLength(1);
    expect(finished).toEqual(["user:Hi", "assistant:Hello [1]"]);
  });

  it("shows typing until the first delta", () => {
    const typing = run([{ type: "typing", seq: 1, message_id: "a1" }]).conversation;
    expect(typing.typing).toBe("a1");
    const streaming = applyEvent(typing, { type: "delta", seq: 2, message_id: "a1", text: "x" });
    expect(streaming.conversation.typing).toBeNull();
  });

  it("ignores duplicates and replays at or below the last applied seq", () => {
    const delta = (seq: number, text: string): ServerEvent => ({ type: "delta", seq, message_id: "a1", text });
    const { conversation } = run([delta(1, "a"), delta(2, "b"), delta(2, "b"), delta(1, "a"), delta(3, "c")]);
    expect(conversation.messages[0]?.text).toBe("abc");
    expect(conversation.lastSeq).toBe(3);
  });

  it("resumes a stream after a reconnect with nothing twice", () => {
    const before = run([
      { type: "delta", seq: 1, message_id: "a1", text: "one " },
      { type: "delta", seq: 2, message_id: "a1", text: "two " },
    ]).conversation;
    // The server replays from the client's last_seq, and may overlap with what was seen.
    const { conversation, finished } = run(
      [
        ready({ last_seq: 2 }),
        { type: "delta", seq: 2, message_id: "a1", text: "two " },
        { type: "delta", seq: 3, message_id: "a1", text: "three" },
        { type: "complete", seq: 4, message: message({ id: "a1", text: "one two three" }) },
        { type: "complete", seq: 4, message: message({ id: "a1", text: "one two three" }) },
      ],
      before,
    );
    expect(texts(conversation)).toEqual(["assistant:one two three:complete"]);
    expect(finished).toEqual(["assistant:one two three"]);
  });

  it("creates the message for a delta it has not seen", () => {
    const { conversation } = run([{ type: "delta", seq: 7, message_id: "a9", text: "mid-" }]);
    expect(conversation.messages).toMatchObject([
      { id: "a9", role: "assistant", text: "mid-", status: "streaming" },
    ]);
  });

  it("takes the complete text as authoritative, whatever the deltas said", () => {
    const { conversation } = run([
      { type: "delta", seq: 1, message_id: "a1", text: "partial answ" },
      { type: "complete", seq: 2, message: message({ id: "a1", text: "Sorry, try later.", status: "fallback" }) },
      { type: "delta", seq: 3, message_id: "a1", text: "late" },
    ]);
    expect(texts(conversation)).toEqual(["assistant:Sorry, try later.:fallback"]);
  });

  it("replaces what is shown with history, keeping unconfirmed messages", () => {
    let c = run([{ type: "delta", seq: 5, message_id: "old", text: "stale" }]).conversation;
    c = addOutgoing(c, "k-confirmed", "asked before");
    c = addOutgoing(c, "k-unsent", "asked offline");
    const { conversation, finished } = run(
      [
        ready({
          last_seq: 40,
          history: [
            message({ id: "u1", role: "user", text: "asked before", client_id: "k-confirmed" }),
            message({ id: "a1", text: "answer" }),
          ],
        }),
      ],
      c,
    );
    expect(texts(conversation)).toEqual([
      "user:asked before:complete",
      "assistant:answer:complete",
      "user:asked offline:pending",
    ]);
    expect(conversation.lastSeq).toBe(40);
    expect(finished).toEqual([]);
  });

  it("keeps its own position on a ready without history in the same conversation", () => {
    const before = run([{ type: "delta", seq: 3, message_id: "a1", text: "x" }]).conversation;
    const after = applyEvent(before, ready({ last_seq: 9 })).conversation;
    expect(after.lastSeq).toBe(3);
    expect(after.messages).toHaveLength(1);
  });

  it("follows the server when its count went backwards", () => {
    const before = run([{ type: "delta", seq: 30, message_id: "a1", text: "x" }]).conversation;
    let after = applyEvent(before, ready({ last_seq: 2 })).conversation;
    after = applyEvent(after, { type: "delta", seq: 3, message_id: "a2", text: "new" }).conversation;
    expect(after.lastSeq).toBe(3);
    expect(after.messages.map((m) => m.text)).toEqual(["x", "new"]);
  });

  it("starts over when the server opens another conversation", () => {
    const before = run([{ type: "delta", seq: 3, message_id: "a1", text: "x" }]).conversation;
    const after = applyEvent(before, ready({ conversation_id: "c2", last_seq: 0 })).conversation;
    expect(after).toMatchObject({ id: "c2", lastSeq: 0, messages: [] });
  });

  it("shows the server's words for limit_reached and marks the message refused", () => {
    let c = addOutgoing(emptyConversation("c1"), "k1", "hello");
    c = applyEvent(c, {
      type: "error",
      code: "limit_reached",
      message: "Daily limit reached, come back tomorrow.",
      client_id: "k1",
    }).conversation;
    expect(c.notice).toEqual({ code: "limit_reached", text: "Daily limit reached, come back tomorrow." });
    expect(c.messages[0]).toMatchObject({ status: "failed", error: "limit_reached" });
    expect(outboxFrames(c)).toEqual([]);
  });

  it("ignores a replayed error with an old seq", () => {
    const c = run([{ type: "delta", seq: 4, message_id: "a1", text: "x" }]).conversation;
    const after = applyEvent(c, { type: "error", code: "limit_reached", message: "no", seq: 4 });
    expect(after.conversation.notice).toBeNull();
  });
});

describe("the outbox", () => {
  it("holds pending messages in order until their client id is confirmed", () => {
    let c = addOutgoing(emptyConversation("c1"), "k1", "first");
    c = addOutgoing(c, "k2", "second");
    expect(outboxFrames(c)).toEqual([
      { type: "message", client_id: "k1", text: "first" },
      { type: "message", client_id: "k2", text: "second" },
    ]);
    const applied = applyEvent(c, {
      type: "message",
      seq: 1,
      message: message({ id: "u1", role: "user", text: "first", client_id: "k1" }),
    });
    c = applied.conversation;
    expect(outboxFrames(c)).toEqual([{ type: "message", client_id: "k2", text: "second" }]);
    // Confirmed in place: same key, same position, now with the server's id.
    expect(c.messages[0]).toMatchObject({ key: "k1", id: "u1", status: "complete" });
    expect(applied.finished.map((m) => m.text)).toEqual(["first"]);
  });

  it("does not show a message twice when the server confirms it again", () => {
    let c = addOutgoing(emptyConversation("c1"), "k1", "hi");
    const confirm = (seq: number): ServerEvent => ({
      type: "message",
      seq,
      message: message({ id: "u1", role: "user", text: "hi", client_id: "k1" }),
    });
    const first = applyEvent(c, confirm(1));
    c = first.conversation;
    const again = applyEvent(c, confirm(2));
    expect(again.conversation.messages).toHaveLength(1);
    expect(again.finished).toEqual([]);
  });

  it("puts a refused message back with the same client id on retry", () => {
    let c = addOutgoing(emptyConversation("c1"), "k1", "hi");
    c = applyEvent(c, { type: "error", code: "rate_limited", message: "", client_id: "k1" }).conversation;
    expect(outboxFrames(c)).toEqual([]);
    c = retryOutgoing(c, "k1");
    expect(outboxFrames(c)).toEqual([{ type: "message", client_id: "k1", text: "hi" }]);
  });
});

describe("parsing frames", () => {
  it("reads known events and drops malformed ones", () => {
    expect(parseServerEvent('{"type":"delta","seq":3,"message_id":"a","text":"x"}')).toEqual({
      type: "delta",
      seq: 3,
      message_id: "a",
      text: "x",
    });
    expect(parseServerEvent('{"type":"delta","seq":"3","message_id":"a","text":"x"}')).toBeNull();
    expect(parseServerEvent('{"type":"mystery"}')).toBeNull();
    expect(parseServerEvent("not json")).toBeNull();
    expect(parseServerEvent('{"type":"heartbeat"}')).toEqual({ type: "heartbeat" });
  });

  it("normalizes citations", () => {
    const event = parseServerEvent(
      JSON.stringify({
        type: "complete",
        seq: 1,
        message: {
          id: "a",
          role: "assistant",
          text: "t",
          status: "complete",
          citations: [{ number: 1, title: "Doc", url: null, heading_path: ["A", "B"] }, { bad: true }],
        },
      }),
    );
    expect(event).toMatchObject({
      message: { citations: [{ number: 1, title: "Doc", url: null, headingPath: ["A", "B"] }] },
    });
  });
});

describe("backoff", () => {
  it("stays within [0.5, 1] of min(cap, base * 2^n)", () => {
    for (let attempt = 0; attempt < 40; attempt++) {
      const ceiling = Math.min(30_000, 500 * 2 ** attempt);
      expect(backoffCeiling(attempt)).toBe(ceiling);
      for (const r of [0, 0.25, 0.5, 0.999999, Math.random()]) {
        const delay = backoffDelay(attempt, () => r);
        expect(delay).toBeGreaterThanOrEqual(0.5 * ceiling);
        expect(delay).toBeLessThanOrEqual(ceiling);
      }
    }
    expect(backoffDelay(0, () => 0)).toBe(250);
    expect(backoffDelay(3, () => 1)).toBe(4000);
    expect(backoffDelay(100, () => 0.5)).toBe(22_500);
  });
});

describe("client ids", () => {
  it("are UUIDs, with or without crypto.randomUUID", () => {
    const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
    expect(newClientId()).toMatch(uuid);
    const original = globalThis.crypto.randomUUID;
    try {
      Object.defineProperty(globalThis.crypto, "randomUUID", { value: undefined, configurable: true });
      const ids = new Set(Array.from({ length: 50 }, newClientId));
      expect(ids.size).toBe(50);
      for (const id of ids) expect(id).toMatch(uuid);
    } finally {
      Object.defineProperty(globalThis.crypto, "randomUUID", { value: original, configurable: true });
    }
  });
});
