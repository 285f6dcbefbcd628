import { afterEach, describe, expect, it, vi } from "vitest";
import { ApiError, authedFetch, chooseWorkspace, CSRF_HEADER, currentWorkspace, errorFrom, getAccessToken, logIn, logOut, refresh } from "../src/auth/session";

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });

function mockFetch(handler: (request: Request) => Response | Promise<Response>) {
  const calls: Request[] = [];
  vi.stubGlobal(
    "fetch",
    vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
      const request = input instanceof Request ? input : new Request(new URL(String(input), "http://parley.test"), init);
      calls.push(request);
      return handler(request);
    }),
  );
  return calls;
}

afterEach(async () => {
  mockFetch(() => new Response(null, { status: 204 }));
  await logOut();
  chooseWorkspace(null);
  vi.unstubAllGlobals();
});

describe("the cookie session", () => {
  it("logs in with the CSRF header and keeps the access token in memory only", async () => {
    const calls = mockFetch(() => json(200, { access_token: "at-1", expires_in: 900 }));
    await logIn("ada@example.com", "pw");
    expect(getAccessToken()).toBe("at-1");
    expect(calls[0]?.headers.get(CSRF_HEADER)).toBe("1");
    expect(calls[0]?.url).toMatch(/\/api\/v1\/auth\/session$/);
    expect(JSON.stringify(localStorage)).not.toContain("at-1");
  });

  it("shares one refresh between concurrent callers (the token is single-use)", async () => {
    const calls = mockFetch(() => json(200, { access_token: "at-2" }));
    const results = await Promise.all([refresh(), refresh(), refresh()]);
    expect(results).toEqual([true, true, true]);
    expect(calls).toHaveLength(1);
  });

  it("reports no session when the refresh is refused", async () => {
    mockFetch(() => json(401, { detail: "There is no session cookie. Log in again." }));
    expect(await refresh()).toBe(false);
    expect(getAccessToken()).toBeNull();
  });

  it("refreshes once on a 401 and retries with the new token and the workspace", async () => {
    chooseWorkspace("tenant-1");
    let refreshed = false;
    const calls = mockFetch((request) => {
      if (request.url.endsWith("/session/refresh")) {
        refreshed = true;
        return json(200, { access_token: "fresh" });
      }
      return request.headers.get("Authorization") === "Bearer fresh" ? json(200, { ok: true }) : json(401, { detail: "expired" });
    });
    const response = await authedFetch(new Request("http://parley.test/api/v1/me"));
    expect(response.status).toBe(200);
    expect(refreshed).toBe(true);
    const retried = calls[calls.length - 1];
    expect(retried?.headers.get("X-Parley-Tenant")).toBe("tenant-1");
  });

  it("forgets the workspace on logout, so the next person doesn't start in it", async () => {
    chooseWorkspace("tenant-1");
    const calls = mockFetch(() => new Response(null, { status: 204 }));
    await logOut();
    expect(currentWorkspace()).toBeNull();
    expect(calls[0]?.method).toBe("DELETE");
    expect(calls[0]?.headers.get(CSRF_HEADER)).toBe("1");
  });

  it("gives up after one refresh: a second 401 is returned as it is", async () => {
    const calls = mockFetch((request) =>
      request.url.endsWith("/session/refresh") ? json(401, { detail: "no" }) : json(401, { detail: "expired" }),
    );
    const response = await authedFetch(new Request("http://parley.test/api/v1/me"));
    expect(response.status).toBe(401);
    expect(calls).toHaveLength(2);
  });
});

describe("errorFrom", () => {
  it("carries the server's message and fields", async () => {
    const error = await errorFrom(json(422, { detail: "Some fields are not valid: name.", fields: [{ field: "name", message: "required" }] }));
    expect(error).toBeInstanceOf(ApiError);
    expect(error.message).toBe("Some fields are not valid: name.");
    expect(error.fields).toEqual([{ field: "name", message: "required" }]);
  });

  it("falls back to the status line when the body is not JSON", async () => {
    const error = await errorFrom(new Response("<html>", { status: 502, statusText: "Bad Gateway" }));
    expect(error.message).toBe("502 Bad Gateway");
  });
});
