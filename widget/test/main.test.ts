import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import type { ParleyGlobal } from "../src/main";
import { FakeSocket } from "./fake-socket";

const CONFIG = {
  assistant: { name: "Harbour Shoes", language: "en", welcome_message: "Hi!", suggested_questions: [] },
  appearance: { title: "Harbour Shoes", primary_color: "#2563eb", position: "right", greeting: "" },
  max_message_chars: 2000,
};

type Call = { url: string; init?: RequestInit };

function stubNetwork(): Call[] {
  const calls: Call[] = [];
  vi.stubGlobal("fetch", async (url: string, init?: RequestInit) => {
    calls.push({ url, init });
    const body = url.includes("/config")
      ? CONFIG
      : { visitor_token: "tok", visitor_id: "v1", expires_at: "2099-01-01T00:00:00Z" };
    return new Response(JSON.stringify(body), { status: 200, headers: { "Content-Type": "application/json" } });
  });
  vi.stubGlobal("WebSocket", FakeSocket);
  return calls;
}

const flush = async () => {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setTimeout(resolve, 0));
};

function addScript(attributes: Record<string, string>): void {
  const script = document.createElement("script");
  script.src = "https://parley.example/widget.js";
  for (const [name, value] of Object.entries(attributes)) script.setAttribute(name, value);
  document.head.append(script);
}

beforeEach(() => {
  vi.resetModules();
  FakeSocket.reset();
  localStorage.clear();
  sessionStorage.clear();
  document.head.replaceChildren();
  document.body.replaceChildren();
  delete window.Parley;
});

afterEach(() => {
  vi.unstubAllGlobals();
});

describe("bootstrapping from the script tag", () => {
  it("talks to the script's own origin and replays calls queued before it loaded", async () => {
    const calls = stubNetwork();
    addScript({ "data-assistant": "pk_1", "data-lang": "ru" });
    const stub = function (...args: unknown[]) {
      ((stub as unknown as { q: unknown[] }).q ??= []).push(args);
    };
    window.Parley = stub;
    const seen: string[] = [];
    (window.Parley as (...a: unknown[]) => void)("on", "open", () => seen.push("open"));
    (window.Parley as (...a: unknown[]) => void)("open");

    await import("../src/main");
    await flush();

    expect(calls.map((c) => c.url)).toEqual([
      "https://parley.example/api/widget/config?key=pk_1",
      "https://parley.example/api/widget/session",
    ]);
    expect(JSON.parse(String(calls[1]?.init?.body))).toEqual({ key: "pk_1" });
    const host = document.body.querySelector("parley-widget") as HTMLElement;
    const panel = host.shadowRoot?.querySelector(".panel") as HTMLElement;
    expect(panel.hidden).toBe(false);
    expect(host.shadowRoot?.querySelector(".launcher")?.getAttribute("aria-label")).toBe("Закрыть чат");
    expect(seen).toEqual(["open"]);

    const socket = FakeSocket.last();
    expect(socket.url).toBe("wss://parley.example/ws/widget?key=pk_1");
    socket.open();
    expect(socket.sent[0]).toEqual({ type: "hello", visitor_token: "tok" });

    const parley = window.Parley as ParleyGlobal;
    parley.on("close", () => seen.push("close"));
    parley.close();
    expect(panel.hidden).toBe(true);
    expect(seen).toEqual(["open", "close"]);
    expect(JSON.parse(localStorage.getItem("parley:pk_1") ?? "{}")).toMatchObject({
      visitor_token: "tok",
      visitor_id: "v1",
    });
  });

  it("stays closed and offline until opened, and loads only once", async () => {
    const calls = stubNetwork();
    addScript({ "data-assistant": "pk_2" });
    await import("../src/main");
    await flush();
    // No stored visitor: no session and no socket before the visitor opens the chat.
    expect(calls.map((c) => c.url)).toEqual(["https://parley.example/api/widget/config?key=pk_2"]);
    expect(FakeSocket.made).toHaveLength(0);
    const first = window.Parley;

    vi.resetModules();
    await import("../src/main");
    await flush();
    expect(window.Parley).toBe(first);
    expect(document.body.querySelectorAll("parley-widget")).toHaveLength(1);
  });

  it("takes an object-style queue too", async () => {
    const calls = stubNetwork();
    addScript({ "data-assistant": "pk_3" });
    window.Parley = { q: [["identify", { userId: "42", userHash: "beef" }]] };
    await import("../src/main");
    await flush();
    const session = calls.find((c) => c.url.endsWith("/api/widget/session"));
    expect(JSON.parse(String(session?.init?.body))).toEqual({ key: "pk_3", user_id: "42", user_hash: "beef" });
    expect(typeof (window.Parley as ParleyGlobal).open).toBe("function");
  });

  it("does nothing but warn without data-assistant", async () => {
    stubNetwork();
    const warn = vi.spyOn(console, "warn").mockImplementation(() => undefined);
    addScript({});
    await import("../src/main");
    expect(window.Parley).toBeUndefined();
    expect(warn).toHaveBeenCalled();
  });
});
