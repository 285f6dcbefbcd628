import { describe, expect, it } from "vitest";
import type { Schemas } from "../src/api/client";
import { en, ru } from "../src/i18n/messages";
import { pickLang, translate } from "../src/i18n";
import { splitCitations } from "../src/lib/ask";
import { changedFields, draftOf } from "../src/lib/assistantForm";
import { filtersFrom, queryOf } from "../src/lib/conversationFilters";
import { pollInterval, progressOf, POLL_MS } from "../src/lib/documents";
import { formatCost, percent, widgetSnippet } from "../src/lib/format";
import { canChat, canManage } from "../src/lib/permissions";
import { pickWorkspace } from "../src/lib/workspace";
import { safeNext } from "../src/pages/auth/Login";
import { parseOrigins, previewUrl } from "../src/pages/channels/Widget";
import { slugify } from "../src/pages/workspace/NewWorkspace";

const assistant: Schemas["AssistantRead"] = {
  id: "a1",
  name: "Helper",
  instructions: "Be kind.",
  provider: "auto",
  model: null,
  temperature: 0.2,
  max_answer_tokens: 500,
  knowledge_base_ids: ["kb1"],
  top_k: 5,
  threshold: null,
  welcome_message: null,
  suggested_questions: ["Hours?"],
  fallback_message: "Sorry.",
  language: "en",
  visitor_daily_message_cap: null,
  public_key: "pk_1234567890",
  allowed_origins: [],
  allow_all_origins: false,
  appearance: {},
  created_at: "2026-01-01T00:00:00Z",
  updated_at: "2026-01-01T00:00:00Z",
};

describe("the assistant editor's patch", () => {
  it("is empty when nothing changed", () => {
    expect(changedFields(assistant, draftOf(assistant))).toEqual({});
  });

  it("holds only what changed, in the API's types", () => {
    const draft = { ...draftOf(assistant), temperature: "0.7", threshold: "0.3", suggested_questions: "Hours?\n\n  Returns? ", model: "  " };
    expect(changedFields(assistant, draft)).toEqual({ temperature: 0.7, threshold: 0.3, suggested_questions: ["Hours?", "Returns?"] });
  });

  it("turns cleared optional numbers into null", () => {
    const capped = { ...assistant, visitor_daily_message_cap: 50 };
    expect(changedFields(capped, { ...draftOf(capped), visitor_daily_message_cap: "" })).toEqual({ visitor_daily_message_cap: null });
  });
});

describe("conversation filters", () => {
  it("read only known values from the URL and send only the set ones", () => {
    const filters = filtersFrom(new URLSearchParams("q=+shoes+&channel=widget&feedback=sideways&since=2026-01-02"));
    expect(filters.channel).toBe("widget");
    expect(filters.feedback).toBe("");
    expect(queryOf(filters)).toEqual({ q: "shoes", channel: "widget", since: "2026-01-02" });
  });
});

describe("documents' live status", () => {
  const doc = (status: Schemas["DocumentStatus"], done = 0, total = 0) =>
    ({ status, chunks_done: done, chunks_total: total }) as Schemas["DocumentRead"];

  it("polls while any document is unsettled, and stops when all are", () => {
    expect(pollInterval([doc("ready"), doc("processing")])).toBe(POLL_MS);
    expect(pollInterval([doc("ready"), doc("failed")])).toBe(false);
    expect(pollInterval([])).toBe(false);
  });

  it("shows progress from the chunk counts", () => {
    expect(progressOf(doc("processing", 3, 4))).toBe(75);
    expect(progressOf(doc("queued"))).toBe(0);
    expect(progressOf(doc("ready", 0, 0))).toBe(100);
  });
});

describe("citations in an answer", () => {
  it("are split out as numbers", () => {
    expect(splitCitations("Open at 10:00 [1], closed Sundays [2].")).toEqual(["Open at 10:00 ", 1, ", closed Sundays ", 2, "."]);
    expect(splitCitations("No sources")).toEqual(["No sources"]);
  });
});

describe("strings", () => {
  it("have a Russian text with the same placeholders for every English one", () => {
    const holes = (text: string) => [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
    for (const key of Object.keys(en) as (keyof typeof en)[]) {
      expect(ru[key], key).toBeTruthy();
      expect(holes(ru[key]), key).toEqual(holes(en[key]));
    }
  });

  it("fill placeholders and pick the browser's language", () => {
    expect(translate("ru", "invite.sent", { email: "a@b.c" })).toBe("Приглашение отправлено на a@b.c.");
    expect(pickLang(null, "ru-RU")).toBe("ru");
    expect(pickLang("en", "ru-RU")).toBe("en");
    expect(pickLang(null, "de")).toBe("en");
  });
});

describe("small helpers", () => {
  it("make slugs the API accepts", () => {
    expect(slugify("  Harbour Shoes & Co. ")).toBe("harbour-shoes-co");
    expect(slugify("Магазин")).toBe("");
    expect(slugify("a".repeat(80))).toHaveLength(63);
  });

  it("only follow `next` inside the dashboard", () => {
    expect(safeNext("/assistants/1")).toBe("/assistants/1");
    expect(safeNext("//evil.example")).toBe("/");
    expect(safeNext("https://evil.example")).toBe("/");
    expect(safeNext(null)).toBe("/");
  });

  it("clean allowed origins", () => {
    expect(parseOrigins("https://a.example/\n\n https://b.example:8443 , http://c.example")).toEqual([
      "https://a.example",
      "https://b.example:8443",
      "http://c.example",
    ]);
  });

  it("write the snippet and the preview address", () => {
    expect(widgetSnippet("https://parley.example", "pk_abc")).toBe('<script src="https://parley.example/widget.js" data-assistant="pk_abc" async></script>');
    const hash = new URLSearchParams(previewUrl("pk_abc", { position: "left" }).split("#")[1]);
    expect(hash.get("key")).toBe("pk_abc");
    expect(JSON.parse(hash.get("appearance") ?? "")).toEqual({ position: "left" });
  });

  it("format money and meters", () => {
    expect(formatCost(1_250_000)).toBe("$1.25");
    expect(formatCost(150)).toBe("$0.000150");
    expect(percent(50, 200)).toBe(25);
    expect(percent(5, 0)).toBe(100);
    expect(percent(300, 200)).toBe(100);
  });

  it("know what each role may do", () => {
    expect([canManage("owner"), canManage("admin"), canManage("agent"), canManage("viewer")]).toEqual([true, true, false, false]);
    expect([canChat("agent"), canChat("viewer")]).toEqual([true, false]);
  });

  it("keep the saved workspace only while the person belongs to it", () => {
    const workspaces = [
      { tenant_id: "t1", name: "A", slug: "a", role: "owner" },
      { tenant_id: "t2", name: "B", slug: "b", role: "viewer" },
    ];
    expect(pickWorkspace(workspaces, "t2")?.tenant_id).toBe("t2");
    expect(pickWorkspace(workspaces, "gone")?.tenant_id).toBe("t1");
    expect(pickWorkspace([], "t1")).toBeUndefined();
  });
});
