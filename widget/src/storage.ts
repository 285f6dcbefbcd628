/**
 * What the widget remembers about the visitor across page loads and tabs, in localStorage under
 * a key of its assistant's public key. Where storage is refused (private modes, blocked
 * cookies), it is remembered for the page only.
 */

export interface VisitorRecord {
  visitorToken: string | null;
  visitorId: string | null;
  /** Milliseconds since the epoch. */
  expiresAt: number | null;
  /** The identified user the token was made for (Parley.identify), if any. */
  userId: string | null;
  conversationId: string | null;
  lastSeq: number;
  greetingDismissed: boolean;
}

export const emptyRecord = (): VisitorRecord => ({
  visitorToken: null,
  visitorId: null,
  expiresAt: null,
  userId: null,
  conversationId: null,
  lastSeq: 0,
  greetingDismissed: false,
});

type Json = Record<string, unknown>;

const orNull = (value: unknown): string | null => (typeof value === "string" && value ? value : null);

function parseRecord(text: string | null): VisitorRecord {
  if (!text) return emptyRecord();
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return emptyRecord();
  }
  if (typeof raw !== "object" || raw === null) return emptyRecord();
  const r = raw as Json;
  return {
    visitorToken: orNull(r.visitor_token),
    visitorId: orNull(r.visitor_id),
    expiresAt: typeof r.expires_at === "number" ? r.expires_at : null,
    userId: orNull(r.user_id),
    conversationId: orNull(r.conversation_id),
    lastSeq: typeof r.last_seq === "number" ? r.last_seq : 0,
    greetingDismissed: r.greeting_dismissed === true,
  };
}

const serialize = (r: VisitorRecord): string =>
  JSON.stringify({
    visitor_token: r.visitorToken,
    visitor_id: r.visitorId,
    expires_at: r.expiresAt,
    user_id: r.userId,
    conversation_id: r.conversationId,
    last_seq: r.lastSeq,
    greeting_dismissed: r.greetingDismissed,
  });

function localStorageOrNull(): Storage | null {
  try {
    const storage = globalThis.localStorage;
    const probe = "parley:probe";
    storage.setItem(probe, "1");
    storage.removeItem(probe);
    return storage;
  } catch {
    return null;
  }
}

export class VisitorStore {
  readonly key: string;
  private readonly storage: Storage | null;
  private memory: string | null = null;

  constructor(publicKey: string, storage: Storage | null = localStorageOrNull()) {
    this.key = `parley:${publicKey}`;
    this.storage = storage;
  }

  load(): VisitorRecord {
    return parseRecord(this.read());
  }

  update(change: Partial<VisitorRecord>): VisitorRecord {
    const next = { ...this.load(), ...change };
    const text = serialize(next);
    this.memory = text;
    try {
      this.storage?.setItem(this.key, text);
    } catch {
      // Full or refused: the page keeps it in memory.
    }
    return next;
  }

  clear(): void {
    this.memory = null;
    try {
      this.storage?.removeItem(this.key);
    } catch {
      // Nothing to clear then.
    }
  }

  /** Calls back with the new record when another tab changes it. */
  watch(target: Pick<Window, "addEventListener">, onChange: (record: VisitorRecord) => void): void {
    target.addEventListener("storage", (event: StorageEvent) => {
      if (event.key === this.key) onChange(parseRecord(event.newValue));
    });
  }

  private read(): string | null {
    try {
      return this.storage ? this.storage.getItem(this.key) : this.memory;
    } catch {
      return this.memory;
    }
  }
}
