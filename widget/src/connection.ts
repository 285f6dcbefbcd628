/**
 * The widget's WebSocket: says hello on every (re)connect, keeps the line alive with pings,
 * notices silence, and reconnects with exponential backoff and full jitter until stopped.
 */

import { backoffDelay, parseServerEvent } from "./protocol";
import type { ClientFrame, HelloFrame, ServerEvent } from "./protocol";

export type LinkStatus = "idle" | "connecting" | "online" | "reconnecting" | "offline" | "error";

/** The part of a WebSocket the connection uses, so tests can hand in their own. */
export interface SocketLike {
  readonly readyState: number;
  onopen: ((event: Event) => void) | null;
  onmessage: ((event: MessageEvent) => void) | null;
  onclose: ((event: CloseEvent) => void) | null;
  onerror: ((event: Event) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export interface ConnectionHooks {
  /** Runs before each attempt (a fresh visitor token, for instance); a rejection is a failed attempt. */
  prepare(): Promise<void>;
  /** The hello to say once the socket is open. */
  hello(): HelloFrame;
  onEvent(event: ServerEvent): void;
  onStatus(status: LinkStatus): void;
}

export interface ConnectionOptions {
  createSocket?: (url: string) => SocketLike;
  random?: () => number;
  now?: () => number;
  pingEveryMs?: number;
  /** Silence after which the line is taken as dead: three server heartbeats. */
  silenceMs?: number;
  /** Failed attempts in a row after which the status says `error` (retrying goes on). */
  errorAfter?: number;
}

const OPEN = 1;

export class Connection {
  private socket: SocketLike | null = null;
  private running = false;
  private online = true;
  private ready = false;
  private everReady = false;
  private attempt = 0;
  /** Tells a finished prepare() whether it is still the current attempt. */
  private generation = 0;
  private lastHeard = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private pingTimer: ReturnType<typeof setInterval> | undefined;
  private silenceTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly createSocket: (url: string) => SocketLike;
  private readonly random: () => number;
  private readonly now: () => number;
  private readonly pingEveryMs: number;
  private readonly silenceMs: number;
  private readonly errorAfter: number;

  constructor(
    private readonly url: string,
    private readonly hooks: ConnectionHooks,
    options: ConnectionOptions = {},
  ) {
    this.createSocket = options.createSocket ?? ((u) => new WebSocket(u));
    this.random = options.random ?? Math.random;
    this.now = options.now ?? (() => Date.now());
    this.pingEveryMs = options.pingEveryMs ?? 25_000;
    this.silenceMs = options.silenceMs ?? 75_000;
    this.errorAfter = options.errorAfter ?? 5;
  }

  /** True once the server answered this socket's hello: frames may be sent. */
  get isReady(): boolean {
    return this.ready;
  }

  get isRunning(): boolean {
    return this.running;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    if (!this.online) {
      this.status("offline");
      return;
    }
    this.status("connecting");
    void this.connect();
  }

  stop(): void {
    this.running = false;
    this.drop();
    this.status("idle");
  }

  /** Sends a frame if the conversation is open; answers false otherwise (nothing is queued here). */
  send(frame: ClientFrame): boolean {
    if (!this.ready || !this.socket || this.socket.readyState !== OPEN) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  /** Drops the socket and connects again after the usual backoff (a refused token, a new visitor). */
  restart(): void {
    if (!this.running) return;
    this.drop();
    if (this.online) this.scheduleReconnect();
  }

  /** Follows the browser's online/offline events: no attempts while offline, one at once after. */
  setOnline(online: boolean): void {
    if (online === this.online) return;
    this.online = online;
    if (!this.running) return;
    this.drop();
    if (online) {
      this.attempt = 0;
      this.status(this.everReady ? "reconnecting" : "connecting");
      void this.connect();
    } else {
      this.status("offline");
    }
  }

  private async connect(): Promise<void> {
    const generation = ++this.generation;
    try {
      await this.hooks.prepare();
    } catch {
      if (generation === this.generation && this.running && this.online) this.scheduleReconnect();
      return;
    }
    if (generation !== this.generation || !this.running || !this.online) return;
    let socket: SocketLike;
    try {
      socket = this.createSocket(this.url);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.socket = socket;
    // A handshake that hangs counts as silence too.
    this.heard();
    this.watchSilence(this.silenceMs);
    socket.onopen = () => {
      if (this.socket !== socket) return;
      this.heard();
      socket.send(JSON.stringify(this.hooks.hello()));
      this.startPinging();
    };
    socket.onmessage = (message) => {
      if (this.socket !== socket) return;
      this.heard();
      const event = parseServerEvent(message.data);
      if (!event || event.type === "pong" || event.type === "heartbeat") return;
      if (event.type === "ready") {
        this.ready = true;
        this.everReady = true;
        this.attempt = 0;
        this.status("online");
      }
      this.hooks.onEvent(event);
    };
    socket.onclose = () => {
      if (this.socket !== socket) return;
      this.drop();
      if (this.running && this.online) this.scheduleReconnect();
    };
    // A close event always follows an error; the reconnect is decided there.
    socket.onerror = () => undefined;
  }

  private scheduleReconnect(): void {
    clearTimeout(this.retryTimer);
    const delay = backoffDelay(this.attempt, this.random);
    this.attempt++;
    this.status(
      this.attempt >= this.errorAfter ? "error" : this.everReady ? "reconnecting" : "connecting",
    );
    this.retryTimer = setTimeout(() => void this.connect(), delay);
  }

  /** Forgets the current socket (closing it) and every timer; a later attempt starts clean. */
  private drop(): void {
    this.generation++;
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    clearTimeout(this.silenceTimer);
    this.ready = false;
    const socket = this.socket;
    this.socket = null;
    if (socket) {
      socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
      try {
        socket.close(1000);
      } catch {
        // Already closing.
      }
    }
  }

  private startPinging(): void {
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => {
      if (this.socket?.readyState === OPEN) this.socket.send(JSON.stringify({ type: "ping" }));
    }, this.pingEveryMs);
  }

  private watchSilence(wait: number): void {
    clearTimeout(this.silenceTimer);
    this.silenceTimer = setTimeout(() => {
      const quiet = this.now() - this.lastHeard;
      if (quiet < this.silenceMs) {
        this.watchSilence(this.silenceMs - quiet);
        return;
      }
      this.drop();
      if (this.running && this.online) this.scheduleReconnect();
    }, wait);
  }

  private heard(): void {
    this.lastHeard = this.now();
  }

  private status(status: LinkStatus): void {
    this.hooks.onStatus(status);
  }
}
