/** One message of the conversation on screen, updated in place as it streams and settles. */

import type { Strings } from "./i18n";
import { icon } from "./icons";
import { makeLink, renderMarkdown, safeHttpUrl } from "./markdown";
import { isFinal } from "./protocol";
import type { ChatMessage, Citation, Rating } from "./protocol";

const LOCAL_STATES = new Set(["pending", "failed", "streaming"]);

export interface MessageActions {
  retry(clientId: string): void;
  rate(messageId: string, rating: Rating): void;
}

function el<K extends keyof HTMLElementTagNameMap>(
  doc: Document,
  tag: K,
  className = "",
): HTMLElementTagNameMap[K] {
  const node = doc.createElement(tag);
  if (className) node.className = className;
  return node;
}

/** An assistant's text as Markdown, or a visitor's as plain text (the CSS keeps its line breaks). */
export function fillBubble(
  bubble: HTMLElement,
  message: Pick<ChatMessage, "role" | "text" | "citations">,
): void {
  const doc = bubble.ownerDocument;
  if (message.role === "user") {
    bubble.textContent = message.text;
  } else {
    bubble.replaceChildren(renderMarkdown(doc, message.text, { citations: message.citations }));
  }
}

function citationList(doc: Document, citations: Citation[], strings: Strings): HTMLElement[] {
  if (citations.length === 0) return [];
  const label = el(doc, "div", "sources-label");
  label.textContent = strings.sources;
  const list = el(doc, "ul", "sources");
  for (const citation of citations) {
    const item = el(doc, "li");
    const title = [citation.title || citation.url || "", ...citation.headingPath].join(" › ");
    const text = doc.createTextNode(`[${citation.number}] ${title}`);
    const href = safeHttpUrl(citation.url);
    item.append(href ? makeLink(doc, href, [text]) : text);
    list.append(item);
  }
  return [label, list];
}

export class MessageView {
  readonly el: HTMLElement;
  private readonly bubble: HTMLElement;
  private readonly sources: HTMLElement;
  private readonly meta: HTMLElement;
  private rateBar: HTMLElement | null = null;
  private shown: ChatMessage | null = null;

  constructor(
    private readonly doc: Document,
    private readonly strings: Strings,
    private readonly speaker: string,
    private readonly actions: MessageActions,
  ) {
    this.el = el(doc, "div", "msg");
    this.bubble = el(doc, "div", "bubble");
    this.sources = el(doc, "div");
    this.meta = el(doc, "div", "meta");
    const who = el(doc, "span", "sr");
    this.el.append(who, this.bubble, this.sources, this.meta);
  }

  update(message: ChatMessage): void {
    const before = this.shown;
    if (before === message) return;
    this.shown = message;
    const mine = message.role === "user";
    const state = LOCAL_STATES.has(message.status) ? ` ${message.status}` : "";
    this.el.className = `msg ${mine ? "user" : "assistant"}${state}`;
    this.el.setAttribute("aria-busy", String(message.status === "streaming"));
    (this.el.firstChild as HTMLElement).textContent = `${mine ? this.strings.you : this.speaker}: `;
    if (before?.text !== message.text || before.citations !== message.citations) {
      fillBubble(this.bubble, message);
      this.sources.replaceChildren(...citationList(this.doc, message.citations, this.strings));
    }
    if (before?.status !== message.status || before.error !== message.error) this.updateMeta(message);
    this.updateRating(message);
  }

  private updateMeta(message: ChatMessage): void {
    this.meta.replaceChildren();
    this.meta.hidden = true;
    if (message.role !== "user" || (message.status !== "pending" && message.status !== "failed")) {
      return;
    }
    this.meta.hidden = false;
    if (message.status === "pending") {
      this.meta.textContent = this.strings.sending;
      return;
    }
    const reason =
      message.error === "rate_limited"
        ? this.strings.rateLimited
        : message.error === "too_long"
          ? this.strings.tooLong
          : this.strings.notSent;
    const note = el(this.doc, "span");
    note.textContent = reason;
    this.meta.append(note);
    const clientId = message.clientId;
    if (clientId && message.error !== "too_long") {
      const retry = el(this.doc, "button");
      retry.type = "button";
      retry.textContent = this.strings.retry;
      retry.addEventListener("click", () => this.actions.retry(clientId));
      this.meta.append(retry);
    }
  }

  /** Thumbs on a finished answer; the pressed one shows the visitor's rating. */
  private updateRating(message: ChatMessage): void {
    const id = message.id;
    if (message.role === "user" || !id || !isFinal(message)) {
      this.rateBar?.remove();
      this.rateBar = null;
      return;
    }
    if (!this.rateBar) {
      this.rateBar = el(this.doc, "div", "rate");
      for (const rating of ["up", "down"] as const) {
        const button = el(this.doc, "button");
        button.type = "button";
        button.dataset.rating = rating;
        button.setAttribute("aria-label", rating === "up" ? this.strings.helpful : this.strings.notHelpful);
        button.append(icon(this.doc, rating));
        button.addEventListener("click", () => this.actions.rate(id, rating));
        this.rateBar.append(button);
      }
      this.el.append(this.rateBar);
    }
    for (const button of Array.from(this.rateBar.children)) {
      const pressed = (button as HTMLElement).dataset.rating === message.rating;
      button.setAttribute("aria-pressed", String(pressed));
    }
  }
}
