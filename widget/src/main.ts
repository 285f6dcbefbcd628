/**
 * Bootstraps the widget from its <script> tag and exposes `window.Parley`:
 *
 *   <script src="https://HOST/widget.js" data-assistant="PUBLIC_KEY" async></script>
 */

import { ParleyApi } from "./api";
import { ChatClient } from "./chat";
import { chooseLang, stringsFor } from "./i18n";
import type { ChatMessage, Citation } from "./protocol";
import { VisitorStore } from "./storage";
import { WidgetView } from "./ui";

/** Taken while the script runs: `document.currentScript` is null in any later callback. */
const SCRIPT = findScript();

export type EventName = "message" | "open" | "close";
type Handler = (payload?: unknown) => void;

/** What `Parley.on('message', ...)` handlers receive. */
export interface PublicMessage {
  id: string | null;
  clientId: string | null;
  role: string;
  text: string;
  status: string;
  citations: Citation[];
  createdAt: string | null;
}

export interface ParleyGlobal {
  (method: string, ...args: unknown[]): unknown;
  open(): void;
  close(): void;
  identify(identity: { userId: string; userHash: string }): void;
  on(event: EventName, handler: Handler): void;
  off(event: EventName, handler: Handler): void;
  reset(): void;
  loaded: true;
  q?: unknown;
}

declare global {
  interface Window {
    Parley?: unknown;
  }
}

function findScript(): HTMLScriptElement | null {
  const current = document.currentScript;
  if (current instanceof HTMLScriptElement && current.dataset.assistant !== undefined) return current;
  return document.querySelector<HTMLScriptElement>("script[data-assistant][src]");
}

class Emitter {
  private readonly handlers = new Map<string, Set<Handler>>();

  on(event: string, handler: Handler): void {
    if (typeof handler !== "function") return;
    const set = this.handlers.get(event) ?? new Set<Handler>();
    set.add(handler);
    this.handlers.set(event, set);
  }

  off(event: string, handler: Handler): void {
    this.handlers.get(event)?.delete(handler);
  }

  emit(event: string, payload?: unknown): void {
    for (const handler of this.handlers.get(event) ?? []) {
      try {
        handler(payload);
      } catch (error) {
        // A page's handler that throws must not stop the chat.
        console.error(error);
      }
    }
  }
}

const publicMessage = (m: ChatMessage): PublicMessage => ({
  id: m.id,
  clientId: m.clientId,
  role: m.role,
  text: m.text,
  status: m.status,
  citations: m.citations,
  createdAt: m.createdAt,
});

/** Remembers, for this tab, that the panel was open, so it stays open on the next page. */
function openFlag(key: string): { get(): boolean; set(open: boolean): void } {
  const name = `parley:${key}:open`;
  return {
    get: () => {
      try {
        return sessionStorage.getItem(name) === "1";
      } catch {
        return false;
      }
    },
    set: (open) => {
      try {
        if (open) sessionStorage.setItem(name, "1");
        else sessionStorage.removeItem(name);
      } catch {
        // Not remembered then.
      }
    },
  };
}

function whenBodyReady(run: (body: HTMLElement) => void): void {
  if (document.body) run(document.body);
  else document.addEventListener("DOMContentLoaded", () => run(document.body), { once: true });
}

/** Sets everything up; `begin` then goes to the network (after queued calls such as identify). */
function boot(script: HTMLScriptElement, key: string): { parley: ParleyGlobal; begin: () => void } {
  const base = new URL(script.src, location.href).origin;
  const wsUrl = `${base.replace(/^http/, "ws")}/ws/widget?key=${encodeURIComponent(key)}`;
  const strings = stringsFor(
    chooseLang(script.dataset.lang, document.documentElement.lang, navigator.language),
  );
  const api = new ParleyApi(base, key);
  const store = new VisitorStore(key);
  const client = new ChatClient({ api, store, wsUrl });
  const emitter = new Emitter();
  const flag = openFlag(key);
  let view: WidgetView | null = null;
  let wantOpen = script.dataset.open === "true" || flag.get();

  client.onFinished((message) => {
    emitter.emit("message", publicMessage(message));
    if (message.role !== "user") view?.addUnread();
  });
  store.watch(window, (record) => client.adoptFromOtherTab(record));
  window.addEventListener("online", () => client.setOnline(true));
  window.addEventListener("offline", () => client.setOnline(false));
  if (navigator.onLine === false) client.setOnline(false);

  const mount = (config: Awaited<ReturnType<ParleyApi["config"]>>): void => {
    const widget = new WidgetView(
      document,
      config,
      strings,
      {
        send: (text) => client.send(text),
        retry: (clientId) => client.retry(clientId),
        rate: (messageId, rating) => client.rate(messageId, rating),
        dismissGreeting: () => client.dismissGreeting(),
        openChanged: (open) => {
          wantOpen = open;
          flag.set(open);
          if (open) client.start();
          emitter.emit(open ? "open" : "close");
        },
      },
      !client.greetingDismissed,
    );
    view = widget;
    let scheduled = false;
    const render = () => {
      scheduled = false;
      widget.render(client.conversation, client.status);
    };
    client.subscribe(() => {
      if (scheduled) return;
      scheduled = true;
      if (typeof requestAnimationFrame === "function") requestAnimationFrame(render);
      else setTimeout(render, 16);
    });
    render();
    whenBodyReady((body) => {
      body.append(widget.host);
      if (wantOpen) widget.setOpen(true, false);
    });
  };

  const begin = (): void => {
    client.refreshOnLoad();
    api.config().then(mount, (error: unknown) => {
      console.warn("Parley: the chat widget could not load its settings.", error);
    });
  };

  const methods = {
    open: () => {
      wantOpen = true;
      view?.setOpen(true, false);
    },
    close: () => {
      wantOpen = false;
      view?.setOpen(false, false);
    },
    identify: (identity: { userId: string; userHash: string }) => {
      const { userId, userHash } = identity ?? {};
      if (userId === undefined || userId === null || typeof userHash !== "string") {
        console.warn("Parley.identify() needs {userId, userHash}.");
        return;
      }
      client.identify(String(userId), userHash);
    },
    on: (event: EventName, handler: Handler) => emitter.on(event, handler),
    off: (event: EventName, handler: Handler) => emitter.off(event, handler),
    reset: () => client.reset(),
  };
  const call = (method: string, ...args: unknown[]): unknown => {
    const fn = (methods as Record<string, unknown>)[method];
    if (typeof fn === "function") return (fn as (...a: unknown[]) => unknown)(...args);
    console.warn(`Parley: unknown method ${method}`);
    return undefined;
  };
  return { parley: Object.assign(call, methods, { loaded: true as const }), begin };
}

/** Replays calls made before the script loaded: `Parley('open')` or `{q: [['open']]}`. */
function replayQueue(parley: ParleyGlobal, queue: unknown): void {
  if (!Array.isArray(queue)) return;
  for (const entry of queue) {
    const [method, ...args] = Array.from(entry as ArrayLike<unknown>);
    if (typeof method === "string") parley(method, ...args);
  }
}

function start(): void {
  const existing = window.Parley as Partial<ParleyGlobal> | undefined;
  if (existing?.loaded) return;
  const key = SCRIPT?.dataset.assistant?.trim();
  if (!SCRIPT || !key) {
    console.warn('Parley: add data-assistant="PUBLIC_KEY" to the widget\'s <script> tag.');
    return;
  }
  const { parley, begin } = boot(SCRIPT, key);
  window.Parley = parley;
  replayQueue(parley, existing?.q);
  begin();
}

start();
