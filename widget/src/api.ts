/** The two HTTP calls of the widget: its assistant's public config, and the visitor's session. */

export interface WidgetConfig {
  name: string;
  language: string;
  welcomeMessage: string;
  suggestedQuestions: string[];
  title: string;
  primaryColor: string;
  textColor: string;
  position: "left" | "right";
  avatarUrl: string | null;
  launcherIcon: string;
  greeting: string;
  maxMessageChars: number;
}

export interface Session {
  visitorToken: string;
  visitorId: string;
  /** Milliseconds since the epoch; null when the server gave none that could be read. */
  expiresAt: number | null;
}

export interface SessionRequest {
  visitorToken?: string | null;
  userId?: string | null;
  userHash?: string | null;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
  ) {
    super(`Parley: ${status} ${code}`);
  }
}

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

type Json = Record<string, unknown>;

const DEFAULT_COLOR = "#2563eb";
const DEFAULT_TEXT_COLOR = "#ffffff";
// Colours go into CSS custom properties: only plain hex, rgb() and hsl() values are taken.
const COLOR = /^(#[0-9a-f]{3,8}|(rgb|hsl)a?\(\s*[-\d.%,\s/]+\))$/i;

const asObject = (value: unknown): Json =>
  typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Json) : {};
const asString = (value: unknown, fallback = ""): string =>
  typeof value === "string" ? value : fallback;
const asColor = (value: unknown, fallback: string): string =>
  typeof value === "string" && COLOR.test(value.trim()) ? value.trim() : fallback;

export function parseConfig(raw: unknown): WidgetConfig {
  const body = asObject(raw);
  const assistant = asObject(body.assistant);
  const look = asObject(body.appearance);
  const name = asString(assistant.name, "Assistant");
  const questions = Array.isArray(assistant.suggested_questions)
    ? assistant.suggested_questions.filter((q): q is string => typeof q === "string" && q.trim() !== "")
    : [];
  const max = body.max_message_chars;
  return {
    name,
    language: asString(assistant.language, "en"),
    welcomeMessage: asString(assistant.welcome_message),
    suggestedQuestions: questions.slice(0, 6),
    title: asString(look.title) || name,
    primaryColor: asColor(look.primary_color, DEFAULT_COLOR),
    textColor: asColor(look.text_color, DEFAULT_TEXT_COLOR),
    position: look.position === "left" ? "left" : "right",
    avatarUrl: typeof look.avatar_url === "string" && look.avatar_url !== "" ? look.avatar_url : null,
    launcherIcon: asString(look.launcher_icon, "chat"),
    greeting: asString(look.greeting),
    maxMessageChars: typeof max === "number" && max > 0 ? Math.floor(max) : 2000,
  };
}

/** `expires_at` as an ISO date or as seconds (or milliseconds) since the epoch. */
export function parseExpiry(value: unknown): number | null {
  if (typeof value === "number" && Number.isFinite(value)) {
    return value < 1e12 ? value * 1000 : value;
  }
  if (typeof value === "string") {
    const ms = Date.parse(value);
    return Number.isNaN(ms) ? null : ms;
  }
  return null;
}

async function errorOf(response: Response): Promise<ApiError> {
  let code = "http_error";
  try {
    const body = asObject(await response.json());
    code = asString(body.error, asString(body.detail, code));
  } catch {
    // Not JSON: the status says enough.
  }
  return new ApiError(response.status, code);
}

export class ParleyApi {
  constructor(
    private readonly baseUrl: string,
    private readonly key: string,
    private readonly fetchImpl: FetchLike = (input, init) => fetch(input, init),
  ) {}

  async config(): Promise<WidgetConfig> {
    const url = `${this.baseUrl}/api/widget/config?key=${encodeURIComponent(this.key)}`;
    const response = await this.fetchImpl(url, { credentials: "omit" });
    if (!response.ok) throw await errorOf(response);
    return parseConfig(await response.json());
  }

  async session(request: SessionRequest): Promise<Session> {
    const body: Json = { key: this.key };
    if (request.visitorToken) body.visitor_token = request.visitorToken;
    if (request.userId) {
      body.user_id = request.userId;
      body.user_hash = request.userHash ?? "";
    }
    const response = await this.fetchImpl(`${this.baseUrl}/api/widget/session`, {
      method: "POST",
      credentials: "omit",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    if (!response.ok) throw await errorOf(response);
    const data = asObject(await response.json());
    const visitorToken = asString(data.visitor_token);
    if (!visitorToken) throw new ApiError(response.status, "invalid_session");
    return {
      visitorToken,
      visitorId: asString(data.visitor_id),
      expiresAt: parseExpiry(data.expires_at),
    };
  }
}
