import { describe, expect, it, vi } from "vitest";

import { ApiError, ParleyApi, parseConfig, parseExpiry } from "../src/api";

describe("the config", () => {
  it("fills defaults for what is missing", () => {
    expect(parseConfig({})).toMatchObject({
      name: "Assistant",
      title: "Assistant",
      primaryColor: "#2563eb",
      position: "right",
      avatarUrl: null,
      suggestedQuestions: [],
      maxMessageChars: 2000,
    });
  });

  it("takes only plain colour values", () => {
    const colour = (value: string) =>
      parseConfig({ appearance: { primary_color: value } }).primaryColor;
    expect(colour("#ff0000")).toBe("#ff0000");
    expect(colour("rgb(10, 20, 30)")).toBe("rgb(10, 20, 30)");
    expect(colour("red;} .x{background:url(https://evil.test)")).toBe("#2563eb");
    expect(colour("url(https://evil.test/x.png)")).toBe("#2563eb");
  });
});

describe("expiry", () => {
  it("reads ISO dates and epoch seconds or milliseconds", () => {
    expect(parseExpiry("2030-01-01T00:00:00Z")).toBe(Date.UTC(2030, 0, 1));
    expect(parseExpiry(1_900_000_000)).toBe(1_900_000_000_000);
    expect(parseExpiry(1_900_000_000_000)).toBe(1_900_000_000_000);
    expect(parseExpiry("soon")).toBeNull();
    expect(parseExpiry(undefined)).toBeNull();
  });
});

describe("the session call", () => {
  it("posts the key, token and identity, and reads the answer", async () => {
    const fetch = vi.fn(async () =>
      new Response(JSON.stringify({ visitor_token: "t2", visitor_id: "user:42", expires_at: 1_900_000_000 })),
    );
    const api = new ParleyApi("https://parley.test", "pk", fetch);
    const session = await api.session({ visitorToken: "t1", userId: "42", userHash: "h" });
    expect(session).toEqual({ visitorToken: "t2", visitorId: "user:42", expiresAt: 1_900_000_000_000 });
    const [url, init] = fetch.mock.calls[0] as unknown as [string, RequestInit];
    expect(url).toBe("https://parley.test/api/widget/session");
    expect(init.credentials).toBe("omit");
    expect(JSON.parse(String(init.body))).toEqual({ key: "pk", visitor_token: "t1", user_id: "42", user_hash: "h" });
  });

  it("turns an error answer into an ApiError with its code", async () => {
    const fetch = vi.fn(async () =>
      new Response(JSON.stringify({ error: "origin_not_allowed", detail: "no" }), { status: 403 }),
    );
    const error = await new ParleyApi("https://parley.test", "pk", fetch).config().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 403, code: "origin_not_allowed" });
  });
});
