/**
 * The visitor's chat: the conversation model, the session it runs under and the connection it
 * runs over. The view reads `conversation` and `status`; the page hooks read finished messages.
 */

import { ApiError } from "./api";
import type { Session, SessionRequest } from "./api";
import { Connection } from "./connection";
import type { ConnectionOptions, LinkStatus } from "./connection";
import {
  addOutgoing,
  applyEvent,
  emptyConversation,
  newClientId,
  outboxFrames,
  rateMessage,
  retryOutgoing,
} from "./protocol";
import type { ChatMessage, ClientFrame, Conversation, HelloFrame, Rating, ServerEvent } from "./protocol";
import type { VisitorRecord, VisitorStore } from "./storage";

export interface SessionSource {
  session(request: SessionRequest): Promise<Session>;
}

export interface ChatOptions {
  api: SessionSource;
  store: VisitorStore;
  wsUrl: string;
  connection?: ConnectionOptions;
  now?: () => number;
}

interface Identity {
  userId: string;
  userHash: string;
}

/** A token this close to its expiry is refreshed before it is used. */
const EXPIRY_MARGIN_MS = 60_000;
const MAX_TIMER_MS = 2 ** 31 - 1;

export class ChatClient {
  conversation: Conversation;
  status: LinkStatus = "idle";
  private record: VisitorRecord;
  private identity: Identity | null = null;
  /** A session call succeeded in this page and nothing has cast doubt on the token since. */
  private sessionFresh = false;
  private sessionPromise: Promise<void> | null = null;
  /** Bumped by reset(): a session asked for before it must not bring the old visitor back. */
  private epoch = 0;
  /** A `ready` was applied in this page: what is shown matches `lastSeq`, so a reconnect can resume. */
  private resumable = false;
  private feedbackQueue: ClientFrame[] = [];
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly connection: Connection;
  private readonly changeListeners = new Set<() => void>();
  private readonly finishedListeners = new Set<(message: ChatMessage) => void>();
  private readonly api: SessionSource;
  private readonly store: VisitorStore;
  private readonly now: () => number;

  constructor(options: ChatOptions) {
    this.api = options.api;
    this.store = options.store;
    this.now = options.now ?? (() => Date.now());
    this.record = this.store.load();
    this.conversation = emptyConversation(this.record.conversationId);
    this.connection = new Connection(
      options.wsUrl,
      {
        prepare: () => this.ensureSession(),
        hello: () => this.hello(),
        onEvent: (event) => this.onEvent(event),
        onStatus: (status) => {
          this.status = status;
          this.changed();
        },
      },
      options.connection,
    );
  }

  get hasVisitor(): boolean {
    return this.record.visitorToken !== null;
  }

  get greetingDismissed(): boolean {
    return this.record.greetingDismissed;
  }

  /** Connects (once); the conversation then stays live until the page goes. */
  start(): void {
    this.connection.start();
  }

  setOnline(online: boolean): void {
    this.connection.setOnline(online);
  }

  subscribe(listener: () => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  onFinished(listener: (message: ChatMessage) => void): void {
    this.finishedListeners.add(listener);
  }

  send(text: string): void {
    const body = text.trim();
    if (body === "") return;
    const clientId = newClientId();
    this.conversation = addOutgoing(this.conversation, clientId, body);
    this.changed();
    this.start();
    // Not connected: the outbox goes out after the next `ready`.
    this.connection.send({ type: "message", client_id: clientId, text: body });
  }

  retry(clientId: string): void {
    this.conversation = retryOutgoing(this.conversation, clientId);
    this.changed();
    const frame = outboxFrames(this.conversation).find(
      (f) => f.type === "message" && f.client_id === clientId,
    );
    if (frame) this.connection.send(frame);
  }

  rate(messageId: string, rating: Rating): void {
    this.conversation = rateMessage(this.conversation, messageId, rating);
    this.changed();
    const frame: ClientFrame = { type: "feedback", message_id: messageId, rating };
    if (!this.connection.send(frame)) {
      this.feedbackQueue = this.feedbackQueue
        .filter((f) => !(f.type === "feedback" && f.message_id === messageId))
        .concat(frame);
    }
  }

  dismissGreeting(): void {
    this.record = this.store.update({ greetingDismissed: true });
  }

  /** Chats as the page's verified user from now on (Parley.identify). */
  identify(userId: string, userHash: string): void {
    const previous = this.identity;
    this.identity = { userId, userHash };
    if (previous?.userId === userId && previous.userHash === userHash) return;
    if (this.record.userId === userId && this.sessionFresh) return;
    this.sessionFresh = false;
    if (this.connection.isRunning) this.connection.restart();
    else this.refreshSession().catch(() => undefined);
  }

  /** Forgets the visitor on this browser (a logout on a shared computer): a new anonymous one. */
  reset(): void {
    const running = this.connection.isRunning;
    this.connection.stop();
    clearTimeout(this.refreshTimer);
    this.epoch++;
    this.sessionPromise = null;
    this.store.clear();
    this.record = this.store.load();
    this.identity = null;
    this.sessionFresh = false;
    this.resumable = false;
    this.feedbackQueue = [];
    this.conversation = emptyConversation();
    this.changed();
    if (running) this.start();
  }

  /** Renews a stored token on page load, so a returning visitor keeps their history. */
  refreshOnLoad(): void {
    if (this.record.visitorToken || this.identity) this.refreshSession().catch(() => undefined);
  }

  /** Follows what another tab of the same visitor stored. */
  adoptFromOtherTab(other: VisitorRecord): void {
    if (!other.visitorToken) return;
    const mine = this.record;
    if (other.visitorId !== mine.visitorId) {
      // Another tab identified the visitor, or reset: follow it wholesale.
      this.record = other;
      this.sessionFresh = true;
      this.switchConversation(other.conversationId);
      return;
    }
    if ((other.expiresAt ?? 0) > (mine.expiresAt ?? 0)) {
      this.record = { ...mine, visitorToken: other.visitorToken, expiresAt: other.expiresAt };
    }
    const empty = this.conversation.messages.length === 0;
    if (other.conversationId && other.conversationId !== this.conversation.id && empty) {
      this.record = { ...this.record, conversationId: other.conversationId };
      this.switchConversation(other.conversationId);
    }
  }

  private switchConversation(conversationId: string | null): void {
    this.conversation = emptyConversation(conversationId);
    this.resumable = false;
    this.changed();
    // An open socket talks about the old conversation; one being set up will say hello anew.
    if (this.connection.isReady) this.connection.restart();
  }

  private hello(): HelloFrame {
    const frame: HelloFrame = { type: "hello", visitor_token: this.record.visitorToken ?? "" };
    if (this.conversation.id) frame.conversation_id = this.conversation.id;
    // A fresh page shows nothing yet: without last_seq the server sends the history.
    if (this.resumable && this.conversation.lastSeq > 0) frame.last_seq = this.conversation.lastSeq;
    return frame;
  }

  private onEvent(event: ServerEvent): void {
    if (event.type === "error" && event.code === "unauthorized") {
      this.sessionFresh = false;
      this.connection.restart();
      return;
    }
    const { conversation, finished } = applyEvent(this.conversation, event);
    this.conversation = conversation;
    if (event.type === "ready") {
      this.resumable = true;
      this.remember({ conversationId: event.conversation_id });
      for (const frame of [...outboxFrames(conversation), ...this.feedbackQueue]) {
        this.connection.send(frame);
      }
      this.feedbackQueue = [];
    } else if (event.type === "message" || event.type === "complete") {
      this.remember({});
    }
    this.changed();
    for (const message of finished) {
      for (const listener of this.finishedListeners) listener(message);
    }
  }

  private remember(change: Partial<VisitorRecord>): void {
    this.record = this.store.update({ ...change, lastSeq: this.conversation.lastSeq });
  }

  private async ensureSession(): Promise<void> {
    const { visitorToken, expiresAt } = this.record;
    const expiring = expiresAt !== null && expiresAt - this.now() < EXPIRY_MARGIN_MS;
    if (visitorToken && this.sessionFresh && !expiring) return;
    await this.refreshSession();
  }

  private refreshSession(): Promise<void> {
    if (!this.sessionPromise) {
      const promise = this.requestSession().finally(() => {
        if (this.sessionPromise === promise) this.sessionPromise = null;
      });
      this.sessionPromise = promise;
    }
    return this.sessionPromise;
  }

  /**
   * Asks for a session with the stored token (the same visitor comes back, even from an expired
   * token) and the page's identity. A refused identity falls back to the anonymous visitor; a
   * refused token, to a new one. Other failures are left to the connection's backoff.
   */
  private async requestSession(): Promise<void> {
    const epoch = this.epoch;
    let identity = this.identity;
    let token = this.tokenFor(identity);
    for (;;) {
      try {
        const session = await this.api.session({
          visitorToken: token,
          userId: identity?.userId ?? null,
          userHash: identity?.userHash ?? null,
        });
        if (epoch === this.epoch) this.adoptSession(session, identity?.userId ?? null);
        return;
      } catch (error) {
        if (!isRefusal(error)) throw error;
        if (identity) {
          console.warn("Parley: identify() was refused (check user_hash); chatting anonymously.");
          this.identity = identity = null;
          token = this.tokenFor(null);
        } else if (token) {
          token = null;
        } else {
          throw error;
        }
      }
    }
  }

  /** The stored token, unless it belongs to someone other than the identity now asked for. */
  private tokenFor(identity: Identity | null): string | null {
    return !identity || identity.userId === this.record.userId ? this.record.visitorToken : null;
  }

  private adoptSession(session: Session, userId: string | null): void {
    const newVisitor = this.record.visitorId !== null && session.visitorId !== this.record.visitorId;
    this.record = this.store.update({
      visitorToken: session.visitorToken,
      visitorId: session.visitorId,
      expiresAt: session.expiresAt,
      userId,
      ...(newVisitor ? { conversationId: null, lastSeq: 0 } : {}),
    });
    // Fresh only if made for whom the page says the visitor is now (identify may have come since).
    this.sessionFresh = (this.identity?.userId ?? null) === userId;
    if (newVisitor) this.switchConversation(null);
    this.scheduleRefresh();
  }

  /** Renews the token at four fifths of its remaining life while the chat is live. */
  private scheduleRefresh(): void {
    clearTimeout(this.refreshTimer);
    const { expiresAt } = this.record;
    if (expiresAt === null) return;
    const wait = Math.min(MAX_TIMER_MS, Math.max(5_000, (expiresAt - this.now()) * 0.8));
    this.refreshTimer = setTimeout(() => {
      if (this.connection.isRunning) this.refreshSession().catch(() => undefined);
    }, wait);
  }

  private changed(): void {
    for (const listener of this.changeListeners) listener();
  }
}

/** The server said no to this request (as opposed to being unreachable or busy). */
function isRefusal(error: unknown): boolean {
  return (
    error instanceof ApiError &&
    error.status >= 400 &&
    error.status < 500 &&
    error.status !== 403 &&
    error.status !== 408 &&
    error.status !== 429
  );
}
