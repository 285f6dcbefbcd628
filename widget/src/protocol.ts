/**
 * The widget protocol of docs/widget-protocol.md: the frames both sides send, their validation,
 * and the pure rules that turn server events into the conversation the visitor sees.
 */

export type Rating = "up" | "down";

export interface Citation {
  number: number;
  title: string;
  url: string | null;
  headingPath: string[];
}

/** A message as the server describes it, validated. */
export interface ServerMessage {
  id: string;
  role: string;
  text: string;
  status: string;
  citations: Citation[];
  client_id: string | null;
  created_at: string | null;
}

export interface HelloFrame {
  type: "hello";
  visitor_token: string;
  conversation_id?: string;
  last_seq?: number;
}

export type ClientFrame =
  | HelloFrame
  | { type: "message"; client_id: string; text: string }
  | { type: "feedback"; message_id: string; rating: Rating }
  | { type: "ping" };

export interface ReadyEvent {
  type: "ready";
  conversation_id: string;
  visitor_id: string;
  last_seq: number;
  history?: ServerMessage[];
}

export interface ErrorEvent {
  type: "error";
  code: string;
  message: string;
  seq?: number;
  client_id?: string;
}

export type ServerEvent =
  | ReadyEvent
  | { type: "message"; seq: number; message: ServerMessage }
  | { type: "typing"; seq: number; message_id: string }
  | { type: "delta"; seq: number; message_id: string; text: string }
  | { type: "complete"; seq: number; message: ServerMessage }
  | ErrorEvent
  | { type: "pong" }
  | { type: "heartbeat" };

// --- Parsing: the socket's text is untrusted until it has the shape of a known frame.

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json =>
  typeof value === "object" && value !== null && !Array.isArray(value);
const isSeq = (value: unknown): value is number =>
  typeof value === "number" && Number.isInteger(value) && value >= 0;
const str = (value: unknown): string | null => (typeof value === "string" ? value : null);

function parseCitation(raw: unknown): Citation | null {
  if (!isObject(raw) || typeof raw.number !== "number") return null;
  const path = raw.heading_path;
  const headingPath = Array.isArray(path)
    ? path.filter((part): part is string => typeof part === "string" && part !== "")
    : typeof path === "string" && path !== ""
      ? [path]
      : [];
  return { number: raw.number, title: str(raw.title) ?? "", url: str(raw.url), headingPath };
}

export function parseMessage(raw: unknown): ServerMessage | null {
  if (!isObject(raw)) return null;
  const id = str(raw.id);
  const role = str(raw.role);
  if (id === null || role === null) return null;
  const citations = Array.isArray(raw.citations) ? raw.citations.map(parseCitation) : [];
  return {
    id,
    role,
    text: str(raw.text) ?? "",
    status: str(raw.status) ?? "complete",
    citations: citations.filter((c): c is Citation => c !== null),
    client_id: str(raw.client_id),
    created_at: str(raw.created_at),
  };
}

/** The event a text frame carries, or null for anything malformed or unknown (ignored). */
export function parseServerEvent(data: unknown): ServerEvent | null {
  if (typeof data !== "string") return null;
  let raw: unknown;
  try {
    raw = JSON.parse(data);
  } catch {
    return null;
  }
  if (!isObject(raw)) return null;
  const { seq } = raw;
  switch (raw.type) {
    case "ready": {
      const conversationId = str(raw.conversation_id);
      if (conversationId === null || !isSeq(raw.last_seq)) return null;
      const event: ReadyEvent = {
        type: "ready",
        conversation_id: conversationId,
        visitor_id: str(raw.visitor_id) ?? "",
        last_seq: raw.last_seq,
      };
      if (Array.isArray(raw.history)) {
        event.history = raw.history
          .map(parseMessage)
          .filter((m): m is ServerMessage => m !== null);
      }
      return event;
    }
    case "message":
    case "complete": {
      const message = parseMessage(raw.message);
      return message && isSeq(seq) ? { type: raw.type, seq, message } : null;
    }
    case "typing": {
      const messageId = str(raw.message_id);
      return messageId !== null && isSeq(seq) ? { type: "typing", seq, message_id: messageId } : null;
    }
    case "delta": {
      const messageId = str(raw.message_id);
      const text = str(raw.text);
      return messageId !== null && text !== null && isSeq(seq)
        ? { type: "delta", seq, message_id: messageId, text }
        : null;
    }
    case "error": {
      const event: ErrorEvent = {
        type: "error",
        code: str(raw.code) ?? "error",
        message: str(raw.message) ?? "",
      };
      if (isSeq(seq)) event.seq = seq;
      const clientId = str(raw.client_id);
      if (clientId !== null) event.client_id = clientId;
      return event;
    }
    case "pong":
    case "heartbeat":
      return { type: raw.type };
    default:
      return null;
  }
}

// --- The conversation model.

/** `pending`: sent (or waiting to be) but not yet confirmed; `failed`: refused by the server. */
export type LocalStatus = "pending" | "failed" | "streaming";
const FINAL_STATUSES = new Set(["complete", "cancelled", "fallback"]);

export interface ChatMessage {
  /** Stable across confirmation: the visitor's own messages keep their client id. */
  key: string;
  id: string | null;
  clientId: string | null;
  role: string;
  text: string;
  status: string;
  citations: Citation[];
  createdAt: string | null;
  /** The error code that refused a visitor's message. */
  error?: string;
  rating?: Rating;
}

/** Something the visitor should be told that belongs to no single message. */
export interface Notice {
  code: string;
  /** The server's own words; shown as is for `limit_reached`. */
  text: string;
}

export interface Conversation {
  id: string | null;
  /** The last sequence number applied: events at or below it were seen already. */
  lastSeq: number;
  messages: ChatMessage[];
  /** The answer being prepared, until its first piece arrives. */
  typing: string | null;
  notice: Notice | null;
}

export interface Applied {
  conversation: Conversation;
  /** Messages that became final with this event, each exactly once (the page's `message` hook). */
  finished: ChatMessage[];
}

export const emptyConversation = (id: string | null = null): Conversation => ({
  id,
  lastSeq: 0,
  messages: [],
  typing: null,
  notice: null,
});

export const isFinal = (message: ChatMessage): boolean => FINAL_STATUSES.has(message.status);

function fromServer(message: ServerMessage): ChatMessage {
  return {
    key: message.client_id ?? message.id,
    id: message.id,
    clientId: message.client_id,
    role: message.role,
    text: message.text,
    status: message.status,
    citations: message.citations,
    createdAt: message.created_at,
  };
}

function indexOf(messages: ChatMessage[], id: string, clientId: string | null): number {
  return messages.findIndex(
    (m) => m.id === id || (clientId !== null && m.clientId === clientId),
  );
}

function upsert(c: Conversation, incoming: ServerMessage): Applied {
  const at = indexOf(c.messages, incoming.id, incoming.client_id);
  const messages = c.messages.slice();
  const previous = at >= 0 ? messages[at] : undefined;
  const stored = fromServer(incoming);
  if (previous) {
    // Confirmed or settled in place: same key (so the same element on screen), same rating.
    messages[at] = { ...stored, key: previous.key, rating: previous.rating };
  } else {
    messages.push(stored);
  }
  // A user's message counts once it is confirmed; an answer once it is final.
  const done = (m: ChatMessage) => m.id !== null && (m.role === "user" || isFinal(m));
  const typing = c.typing === incoming.id ? null : c.typing;
  const first = done(stored) && !(previous && done(previous));
  const shown = messages[previous ? at : messages.length - 1] as ChatMessage;
  return { conversation: { ...c, messages, typing }, finished: first ? [shown] : [] };
}

function appendDelta(c: Conversation, messageId: string, text: string): Conversation {
  const at = indexOf(c.messages, messageId, null);
  const messages = c.messages.slice();
  const existing = messages[at];
  if (!existing) {
    messages.push({
      key: messageId,
      id: messageId,
      clientId: null,
      role: "assistant",
      text,
      status: "streaming",
      citations: [],
      createdAt: null,
    });
  } else if (!isFinal(existing)) {
    messages[at] = { ...existing, text: existing.text + text, status: "streaming" };
  }
  return { ...c, messages, typing: c.typing === messageId ? null : c.typing };
}

function applyError(c: Conversation, event: ErrorEvent): Conversation {
  let { messages } = c;
  if (event.client_id !== undefined) {
    messages = messages.map((m) =>
      m.clientId === event.client_id && m.id === null
        ? { ...m, status: "failed", error: event.code }
        : m,
    );
  }
  // The server's own text for limits; other codes that concern a message show on it instead.
  const notice =
    event.code === "limit_reached" ||
    (event.client_id === undefined && event.code !== "unauthorized" && event.code !== "not_found")
      ? { code: event.code, text: event.message }
      : c.notice;
  return { ...c, messages, notice };
}

/**
 * `ready` starts or resumes a conversation. With `history`, what the server sends replaces
 * what is shown (keeping the visitor's unconfirmed messages) and `last_seq` is where the client
 * stands. Without it, the events after the client's `last_seq` follow, so the client keeps its
 * own position: the ready's `last_seq` may already count the events still to come.
 */
function applyReady(c: Conversation, event: ReadyEvent): Conversation {
  const unsent = c.messages.filter((m) => m.id === null);
  if (event.history) {
    const history = event.history.map(fromServer);
    const confirmed = new Set(history.map((m) => m.clientId));
    return {
      id: event.conversation_id,
      lastSeq: event.last_seq,
      messages: [...history, ...unsent.filter((m) => !confirmed.has(m.clientId))],
      typing: null,
      notice: c.id === event.conversation_id ? c.notice : null,
    };
  }
  if (c.id !== event.conversation_id) {
    return { ...emptyConversation(event.conversation_id), lastSeq: event.last_seq, messages: unsent };
  }
  // Behind the client only if the server lost its count; its new events must not be taken as seen.
  return event.last_seq < c.lastSeq ? { ...c, lastSeq: event.last_seq } : c;
}

/** Applies one server event. Events whose `seq` is not above `lastSeq` were applied already. */
export function applyEvent(c: Conversation, event: ServerEvent): Applied {
  if (event.type === "ready") return { conversation: applyReady(c, event), finished: [] };
  if ("seq" in event && event.seq !== undefined) {
    if (event.seq <= c.lastSeq) return { conversation: c, finished: [] };
    c = { ...c, lastSeq: event.seq };
  }
  switch (event.type) {
    case "message":
    case "complete":
      return upsert(c, event.message);
    case "typing":
      return { conversation: { ...c, typing: event.message_id }, finished: [] };
    case "delta":
      return { conversation: appendDelta(c, event.message_id, event.text), finished: [] };
    case "error":
      return { conversation: applyError(c, event), finished: [] };
    default:
      return { conversation: c, finished: [] };
  }
}

// --- The outbox: the visitor's messages that the server has not confirmed yet.

/** Shows a visitor's message at once, as pending until the server confirms its client id. */
export function addOutgoing(c: Conversation, clientId: string, text: string): Conversation {
  const message: ChatMessage = {
    key: clientId,
    id: null,
    clientId,
    role: "user",
    text,
    status: "pending",
    citations: [],
    createdAt: new Date().toISOString(),
  };
  const notice = c.notice?.code === "limit_reached" ? c.notice : null;
  return { ...c, messages: [...c.messages, message], notice };
}

/** Puts a refused message back in the outbox, with the same client id so it is taken once. */
export function retryOutgoing(c: Conversation, clientId: string): Conversation {
  const messages = c.messages.map((m): ChatMessage =>
    m.clientId === clientId && m.status === "failed"
      ? { ...m, status: "pending", error: undefined }
      : m,
  );
  return { ...c, messages, notice: null };
}

/** The frames to (re)send, in order: every unconfirmed, unrefused message of the visitor. */
export function outboxFrames(c: Conversation): ClientFrame[] {
  return c.messages
    .filter((m) => m.id === null && m.status === "pending" && m.clientId !== null)
    .map((m) => ({ type: "message", client_id: m.clientId as string, text: m.text }));
}

export function rateMessage(c: Conversation, messageId: string, rating: Rating): Conversation {
  const messages = c.messages.map((m) => (m.id === messageId ? { ...m, rating } : m));
  return { ...c, messages };
}

// --- Reconnecting.

export const BACKOFF_BASE_MS = 500;
export const BACKOFF_CAP_MS = 30_000;

/** The longest wait before reconnect attempt `attempt` (0-based): 0.5 s doubling up to 30 s. */
export const backoffCeiling = (attempt: number): number =>
  Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.max(0, attempt));

/** The wait before attempt `attempt`: the ceiling times a random factor in [0.5, 1). */
export const backoffDelay = (attempt: number, random: () => number = Math.random): number =>
  backoffCeiling(attempt) * (0.5 + 0.5 * Math.min(Math.max(random(), 0), 1));

export function newClientId(): string {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === "function") return c.randomUUID();
  const bytes = new Uint8Array(16);
  if (c && typeof c.getRandomValues === "function") c.getRandomValues(bytes);
  else for (let i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x40;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
