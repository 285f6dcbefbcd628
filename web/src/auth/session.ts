// The dashboard's session. The access token lives in this module's memory only; the refresh
// token is an httpOnly cookie the page cannot read, sent only to /api/v1/auth/session, and
// every call that uses it carries the X-Parley-CSRF header the server insists on.

export const CSRF_HEADER = "X-Parley-CSRF";
const SESSION_URL = "/api/v1/auth/session";

type Listener = (signedIn: boolean) => void;

let accessToken: string | null = null;
let refreshing: Promise<boolean> | null = null;
const listeners = new Set<Listener>();

export function getAccessToken(): string | null {
  return accessToken;
}

function setAccessToken(token: string | null): void {
  const changed = (token === null) !== (accessToken === null);
  accessToken = token;
  if (changed) listeners.forEach((listener) => listener(token !== null));
}

export function onSessionChange(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export class ApiError extends Error {
  readonly status: number;
  readonly fields: { field: string; message: string }[];

  constructor(status: number, message: string, fields: { field: string; message: string }[] = []) {
    super(message);
    this.status = status;
    this.fields = fields;
  }
}

/** Turns a failed response into an ApiError carrying the server's own message. */
export async function errorFrom(response: Response): Promise<ApiError> {
  let detail = `${response.status} ${response.statusText}`.trim();
  let fields: { field: string; message: string }[] = [];
  try {
    const body = (await response.json()) as { detail?: unknown; fields?: unknown };
    if (typeof body.detail === "string") detail = body.detail;
    if (Array.isArray(body.fields)) fields = body.fields as typeof fields;
  } catch {
    // Not JSON (a proxy's error page): the status line is all there is.
  }
  return new ApiError(response.status, detail, fields);
}

async function sessionCall(method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(`${SESSION_URL}${path}`, {
    method,
    credentials: "same-origin",
    headers: { [CSRF_HEADER]: "1", ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : null,
  });
}

export async function logIn(email: string, password: string): Promise<void> {
  const response = await sessionCall("POST", "", { email, password });
  if (!response.ok) throw await errorFrom(response);
  setAccessToken(((await response.json()) as { access_token: string }).access_token);
}

/** A new access token from the cookie; false when there is no session. Concurrent callers
 *  share one request: the refresh token is single-use, so two would revoke the login. */
export function refresh(): Promise<boolean> {
  refreshing ??= (async () => {
    try {
      const response = await sessionCall("POST", "/refresh");
      if (!response.ok) {
        setAccessToken(null);
        return false;
      }
      setAccessToken(((await response.json()) as { access_token: string }).access_token);
      return true;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

export async function logOut(): Promise<void> {
  try {
    await sessionCall("DELETE", "");
  } finally {
    setAccessToken(null);
    localStorage.removeItem(TENANT_KEY);
  }
}

export const TENANT_KEY = "parley.workspace";

export function currentWorkspace(): string | null {
  return localStorage.getItem(TENANT_KEY);
}

export function chooseWorkspace(id: string | null): void {
  if (id) localStorage.setItem(TENANT_KEY, id);
  else localStorage.removeItem(TENANT_KEY);
}

/** fetch with the access token and workspace; on a 401 it refreshes once and retries. */
export async function authedFetch(input: Request): Promise<Response> {
  const retry = input.clone();
  const send = (request: Request): Promise<Response> => {
    const token = accessToken;
    if (token) request.headers.set("Authorization", `Bearer ${token}`);
    const workspace = currentWorkspace();
    if (workspace && !request.headers.has("X-Parley-Tenant")) {
      request.headers.set("X-Parley-Tenant", workspace);
    }
    return fetch(request);
  };
  const response = await send(input);
  if (response.status !== 401 || !(await refresh())) return response;
  return send(retry);
}
