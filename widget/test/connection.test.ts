import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { ApiError } from "../src/api";
import type { Session, SessionRequest } from "../src/api";
import { ChatClient } from "../src/chat";
import { Connection } from "../src/connection";
import type { LinkStatus } from "../src/connection";
import type { ChatMessage, HelloFrame } from "../src/protocol";
import { VisitorStore } from "../src/storage";
import { FakeSocket } from "./fake-socket";

const HOUR = 3_600_000;

beforeEach(() => {
  vi.useFakeTimers();
  FakeSocket.reset();
  localStorage.clear();
});

afterEach(() => {
  vi.useRealTimers();
});

/** Lets pending promises (the session call before each attempt) settle. */
const settle = () => vi.advanceTimersByTimeAsync(0);

describe("Connection", () => {
  function connect(random = () => 1) {
    const statuses: LinkStatus[] = [];
    const events: string[] = [];
    const hello: HelloFrame = { type: "hello", visitor_token: "t" };
    const connection = new Connection(
      "wss://parley.test/ws/widget?key=k",
      {
        prepare: async () => undefined,
        hello: () => hello,
        onEvent: (event) => events.push(event.type),
        onStatus: (status) => statuses.push(status),
      },
      { createSocket: (url) => new FakeSocket(url), random },
    );
    return { connection, statuses, events };
  }

  it("says hello first, then sends once ready", async () => {
    const { connection, statuses } = connect();
    connection.start();
    await settle();
    const socket = FakeSocket.last();
    expect(socket.url).toBe("wss://parley.test/ws/widget?key=k");
    expect(connection.send({ type: "ping" })).toBe(false);
    socket.open();
    expect(socket.sent).toEqual([{ type: "hello", visitor_token: "t" }]);
    socket.receive({ type: "ready", conversation_id: "c", visitor_id: "v", last_seq: 0 });
    expect(connection.send({ type: "ping" })).toBe(true);
    expect(statuses).toEqual(["connecting", "online"]);
  });

  it("reconnects after a close with growing, capped delays, and starts over after ready", async () => {
    const { connection, statuses } = connect(() => 1);
    connection.start();
    await settle();
    const waits = [500, 1000, 2000, 4000];
    for (const wait of waits) {
      FakeSocket.last().drop();
      const count = FakeSocket.made.length;
      await vi.advanceTimersByTimeAsync(wait - 1);
      expect(FakeSocket.made.length).toBe(count);
      await vi.advanceTimersByTimeAsync(1);
      expect(FakeSocket.made.length).toBe(count + 1);
    }
    const socket = FakeSocket.last();
    socket.open();
    socket.receive({ type: "ready", conversation_id: "c", visitor_id: "v", last_seq: 0 });
    socket.drop();
    await vi.advanceTimersByTimeAsync(500);
    expect(FakeSocket.last()).not.toBe(socket);
    expect(statuses).toContain("reconnecting");
  });

  it("pings every 25 s and reconnects after 75 s of silence", async () => {
    const { connection } = connect();
    connection.start();
    await settle();
    const socket = FakeSocket.last();
    socket.open();
    socket.receive({ type: "ready", conversation_id: "c", visitor_id: "v", last_seq: 0 });
    await vi.advanceTimersByTimeAsync(25_000);
    expect(socket.sentOfType("ping")).toHaveLength(1);
    socket.receive({ type: "heartbeat" });
    await vi.advanceTimersByTimeAsync(74_000);
    expect(socket.closedByClient).toBe(false);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(socket.closedByClient).toBe(true);
    await vi.advanceTimersByTimeAsync(500);
    expect(FakeSocket.last()).not.toBe(socket);
  });

  it("waits while offline and reconnects at once when back online", async () => {
    const { connection, statuses } = connect();
    connection.start();
    await settle();
    const socket = FakeSocket.last();
    socket.open();
    connection.setOnline(false);
    expect(socket.closedByClient).toBe(true);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(FakeSocket.made).toHaveLength(1);
    expect(statuses[statuses.length - 1]).toBe("offline");
    connection.setOnline(true);
    await settle();
    expect(FakeSocket.made).toHaveLength(2);
  });

  it("retries with backoff when preparing fails, and says error after repeated failures", async () => {
    const statuses: LinkStatus[] = [];
    const connection = new Connection(
      "wss://x",
      {
        prepare: () => Promise.reject(new Error("down")),
        hello: () => ({ type: "hello", visitor_token: "" }),
        onEvent: () => undefined,
        onStatus: (status) => statuses.push(status),
      },
      { createSocket: (url) => new FakeSocket(url), random: () => 1, errorAfter: 3 },
    );
    connection.start();
    await vi.advanceTimersByTimeAsync(500 + 1000 + 2000);
    expect(FakeSocket.made).toHaveLength(0);
    expect(statuses[statuses.length - 1]).toBe("error");
    connection.stop();
    expect(statuses[statuses.length - 1]).toBe("idle");
  });
});

describe("ChatClient over a fake socket", () => {
  function setup(sessions?: (request: SessionRequest, call: number) => Promise<Session>) {
    const requests: SessionRequest[] = [];
    const api = {
      session: vi.fn(async (request: SessionRequest): Promise<Session> => {
        requests.push(request);
        if (sessions) return sessions(request, requests.length);
        return { visitorToken: `token-${requests.length}`, visitorId: "v1", expiresAt: Date.now() + HOUR };
      }),
    };
    const store = new VisitorStore("pk_test");
    const client = new ChatClient({
      api,
      store,
      wsUrl: "wss://parley.test/ws/widget?key=pk_test",
      connection: { createSocket: (url) => new FakeSocket(url), random: () => 1 },
    });
    const finished: ChatMessage[] = [];
    client.onFinished((m) => finished.push(m));
    return { client, store, requests, finished };
  }

  async function openSocket(): Promise<FakeSocket> {
    await settle();
    const socket = FakeSocket.last();
    socket.open();
    return socket;
  }

  it("on a fresh page, asks for history: hello without last_seq", async () => {
    new VisitorStore("pk_test").update({
      visitorToken: "stored",
      visitorId: "v1",
      expiresAt: Date.now() + HOUR,
      conversationId: "c1",
      lastSeq: 17,
    });
    const { client, requests } = setup();
    client.start();
    const socket = await openSocket();
    expect(requests[0]?.visitorToken).toBe("stored");
    expect(socket.sent[0]).toEqual({ type: "hello", visitor_token: "token-1", conversation_id: "c1" });
    socket.receive({
      type: "ready",
      conversation_id: "c1",
      visitor_id: "v1",
      last_seq: 17,
      history: [{ id: "a1", role: "assistant", text: "Earlier answer", status: "complete", citations: [] }],
    });
    expect(client.conversation.messages.map((m) => m.text)).toEqual(["Earlier answer"]);
    expect(client.conversation.lastSeq).toBe(17);
  });

  it("resumes with last_seq after a drop and re-sends the unconfirmed outbox", async () => {
    const { client, store, finished } = setup();
    client.start();
    let socket = await openSocket();
    socket.receive({ type: "ready", conversation_id: "c1", visitor_id: "v1", last_seq: 0, history: [] });
    expect(store.load().conversationId).toBe("c1");

    client.send("first");
    client.send("second");
    const sent = socket.sentOfType("message");
    expect(sent.map((f) => f.text)).toEqual(["first", "second"]);
    const [first, second] = sent.map((f) => f.client_id as string);
    socket.receive({
      type: "message",
      seq: 1,
      message: { id: "u1", role: "user", text: "first", status: "complete", citations: [], client_id: first },
    });
    socket.receive({ type: "typing", seq: 2, message_id: "a1" });
    socket.receive({ type: "delta", seq: 3, message_id: "a1", text: "Answer " });
    socket.drop();

    // Typed while disconnected: shown at once, sent after the reconnect.
    client.send("third");
    expect(client.conversation.messages[client.conversation.messages.length - 1]).toMatchObject({ text: "third", status: "pending" });

    await vi.advanceTimersByTimeAsync(500);
    socket = await openSocket();
    expect(socket.sent[0]).toEqual({
      type: "hello",
      visitor_token: "token-1",
      conversation_id: "c1",
      last_seq: 3,
    });
    expect(socket.sentOfType("message")).toEqual([]);
    socket.receive({ type: "ready", conversation_id: "c1", visitor_id: "v1", last_seq: 3 });
    const resent = socket.sentOfType("message");
    expect(resent.map((f) => f.client_id)).toEqual([second, expect.any(String)]);
    expect(resent.map((f) => f.text)).toEqual(["second", "third"]);

    // The stream goes on from where it stopped; a replayed event is not applied twice.
    socket.receive({ type: "delta", seq: 3, message_id: "a1", text: "Answer " });
    socket.receive({ type: "delta", seq: 4, message_id: "a1", text: "continues" });
    socket.receive({
      type: "complete",
      seq: 5,
      message: { id: "a1", role: "assistant", text: "Answer continues", status: "complete", citations: [] },
    });
    const answer = client.conversation.messages.find((m) => m.id === "a1");
    expect(answer?.text).toBe("Answer continues");
    expect(finished.map((m) => `${m.role}:${m.text}`)).toEqual(["user:first", "assistant:Answer continues"]);
    expect(store.load().lastSeq).toBe(5);
  });

  it("gets a new session and says hello again after unauthorized", async () => {
    const { client, requests } = setup();
    client.start();
    let socket = await openSocket();
    socket.receive({ type: "error", code: "unauthorized", message: "token expired" });
    expect(socket.closedByClient).toBe(true);
    await vi.advanceTimersByTimeAsync(500);
    socket = await openSocket();
    expect(requests).toHaveLength(2);
    expect(requests[1]?.visitorToken).toBe("token-1");
    expect(socket.sent[0]).toMatchObject({ type: "hello", visitor_token: "token-2" });
  });

  it("falls back to a new visitor when the stored token is refused", async () => {
    new VisitorStore("pk_test").update({ visitorToken: "forged", visitorId: "v0" });
    const { client, requests, store } = setup(async (request) => {
      if (request.visitorToken) throw new ApiError(401, "unauthorized");
      return { visitorToken: "fresh", visitorId: "v2", expiresAt: null };
    });
    client.start();
    const socket = await openSocket();
    expect(requests.map((r) => r.visitorToken)).toEqual(["forged", null]);
    expect(socket.sent[0]).toEqual({ type: "hello", visitor_token: "fresh" });
    expect(store.load()).toMatchObject({ visitorToken: "fresh", visitorId: "v2" });
  });

  it("sends identity with the session request and reconnects as that user", async () => {
    const { client, requests } = setup(async (request, call) => ({
      visitorToken: `token-${call}`,
      visitorId: request.userId ? `user:${request.userId}` : "anon",
      expiresAt: Date.now() + HOUR,
    }));
    client.start();
    let socket = await openSocket();
    socket.receive({ type: "ready", conversation_id: "c-anon", visitor_id: "anon", last_seq: 4 });
    client.identify("42", "abc");
    expect(socket.closedByClient).toBe(true);
    await vi.advanceTimersByTimeAsync(500);
    socket = await openSocket();
    expect(requests[1]).toMatchObject({ userId: "42", userHash: "abc", visitorToken: null });
    // A different visitor: the anonymous conversation is not theirs.
    expect(socket.sent[0]).toEqual({ type: "hello", visitor_token: "token-2" });
  });

  it("forgets the visitor on reset and starts anew", async () => {
    const { client, requests, store } = setup();
    client.start();
    let socket = await openSocket();
    socket.receive({ type: "ready", conversation_id: "c1", visitor_id: "v1", last_seq: 3, history: [] });
    client.send("private question");
    client.reset();
    expect(socket.closedByClient).toBe(true);
    expect(client.conversation.messages).toEqual([]);
    socket = await openSocket();
    expect(requests.map((r) => r.visitorToken)).toEqual([null, null]);
    expect(socket.sent[0]).toEqual({ type: "hello", visitor_token: "token-2" });
    expect(store.load().conversationId).toBeNull();
  });

  it("joins the conversation another tab started while its own is empty", async () => {
    const { client, store } = setup();
    client.start();
    let socket = await openSocket();
    socket.receive({ type: "ready", conversation_id: "mine", visitor_id: "v1", last_seq: 0, history: [] });
    client.adoptFromOtherTab({ ...store.load(), conversationId: "theirs" });
    expect(socket.closedByClient).toBe(true);
    await vi.advanceTimersByTimeAsync(500);
    socket = await openSocket();
    expect(socket.sent[0]).toEqual({ type: "hello", visitor_token: "token-1", conversation_id: "theirs" });
  });

  it("queues feedback while disconnected", async () => {
    const { client } = setup();
    client.start();
    let socket = await openSocket();
    socket.receive({
      type: "ready",
      conversation_id: "c1",
      visitor_id: "v1",
      last_seq: 1,
      history: [{ id: "a1", role: "assistant", text: "x", status: "complete", citations: [] }],
    });
    socket.drop();
    client.rate("a1", "down");
    client.rate("a1", "up");
    await vi.advanceTimersByTimeAsync(500);
    socket = await openSocket();
    socket.receive({ type: "ready", conversation_id: "c1", visitor_id: "v1", last_seq: 1 });
    expect(socket.sentOfType("feedback")).toEqual([{ type: "feedback", message_id: "a1", rating: "up" }]);
    expect(client.conversation.messages[0]?.rating).toBe("up");
  });
});
