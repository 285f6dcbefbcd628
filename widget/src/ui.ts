/**
 * The widget on the page: a launcher, a greeting next to it, and the chat panel, all inside a
 * shadow root so the page's styles and the widget's never meet.
 */

import type { WidgetConfig } from "./api";
import type { LinkStatus } from "./connection";
import { fill } from "./i18n";
import type { Strings } from "./i18n";
import { icon, launcherIconName } from "./icons";
import { safeHttpUrl } from "./markdown";
import { MessageView, fillBubble } from "./messages";
import type { MessageActions } from "./messages";
import type { Conversation } from "./protocol";
import { applyColors, applyStyles } from "./styles";

export interface ViewActions extends MessageActions {
  send(text: string): void;
  openChanged(open: boolean): void;
  dismissGreeting(): void;
}

const PANEL_ID = "parley-panel";
const NEAR_BOTTOM_PX = 48;

export class WidgetView {
  readonly host: HTMLElement;
  private isOpen = false;
  private unread = 0;
  private readonly doc: Document;
  private readonly root: ShadowRoot;
  private readonly frame: HTMLElement;
  private readonly launcher: HTMLButtonElement;
  private readonly badge: HTMLElement;
  private readonly greeting: HTMLElement;
  private readonly panel: HTMLElement;
  private readonly statusLine: HTMLElement;
  private readonly banner: HTMLElement;
  private readonly log: HTMLElement;
  private readonly suggestions: HTMLElement;
  private readonly typing: HTMLElement;
  private readonly input: HTMLTextAreaElement;
  private readonly views = new Map<string, MessageView>();

  constructor(
    doc: Document,
    private readonly config: WidgetConfig,
    private readonly strings: Strings,
    private readonly actions: ViewActions,
    showGreeting: boolean,
  ) {
    this.doc = doc;
    this.host = doc.createElement("parley-widget");
    this.root = this.host.attachShadow({ mode: "open" });
    applyStyles(this.root);
    applyColors(this.host, config.primaryColor, config.textColor);

    this.frame = this.el("div", `root ${config.position}`);
    this.launcher = this.buildLauncher();
    this.badge = this.el("span", "badge");
    this.badge.hidden = true;
    this.badge.setAttribute("aria-hidden", "true");
    this.launcher.append(this.badge);
    this.greeting = this.buildGreeting(showGreeting);

    this.panel = this.el("div", "panel");
    this.panel.id = PANEL_ID;
    this.panel.hidden = true;
    this.panel.setAttribute("role", "dialog");
    this.panel.setAttribute("aria-label", fill(strings.chatWith, { name: config.title }));
    this.statusLine = this.el("div", "status");
    this.banner = this.el("div", "banner");
    this.banner.hidden = true;
    this.banner.setAttribute("role", "status");
    this.log = this.el("div", "log");
    this.log.setAttribute("role", "log");
    this.log.setAttribute("aria-live", "polite");
    this.log.tabIndex = 0;
    this.suggestions = this.el("div", "suggestions");
    this.typing = this.buildTyping();
    this.input = this.el("textarea");
    this.log.append(this.buildWelcome(), this.suggestions, this.typing);
    this.fillSuggestions();
    this.panel.append(this.buildHeader(), this.banner, this.log, this.buildComposer());

    this.frame.append(this.greeting, this.panel, this.launcher);
    this.frame.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && this.isOpen) {
        event.stopPropagation();
        this.setOpen(false, true);
      }
    });
    this.root.append(this.frame);
  }

  get open(): boolean {
    return this.isOpen;
  }

  /** `focus`: the visitor did it, so focus follows (into the panel, or back to the launcher). */
  setOpen(open: boolean, focus: boolean): void {
    if (open === this.isOpen) return;
    this.isOpen = open;
    const hadFocus = this.root.activeElement !== null && this.panel.contains(this.root.activeElement);
    this.panel.hidden = !open;
    this.frame.classList.toggle("open", open);
    this.launcher.setAttribute("aria-expanded", String(open));
    this.launcher.setAttribute("aria-label", open ? this.strings.closeChat : this.strings.openChat);
    if (open) {
      this.greeting.hidden = true;
      this.unread = 0;
      this.badge.hidden = true;
      this.log.scrollTop = this.log.scrollHeight;
      if (focus) this.input.focus();
    } else if (focus || hadFocus) {
      this.launcher.focus();
    }
    this.actions.openChanged(open);
  }

  /** A new answer came while the panel was closed. */
  addUnread(): void {
    if (this.isOpen) return;
    this.unread++;
    this.badge.textContent = String(Math.min(this.unread, 9));
    this.badge.hidden = false;
    this.launcher.setAttribute(
      "aria-label",
      `${this.strings.openChat} (${fill(this.strings.unread, { count: this.unread })})`,
    );
  }

  render(conversation: Conversation, status: LinkStatus): void {
    this.statusLine.textContent = this.statusText(status);
    const notice = this.noticeText(conversation, status);
    this.banner.hidden = notice === "";
    this.banner.textContent = notice;

    const stick = this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < NEAR_BOTTOM_PX;
    const keys = new Set<string>();
    let previous: Element = this.suggestions;
    let added = false;
    for (const message of conversation.messages) {
      keys.add(message.key);
      let view = this.views.get(message.key);
      if (!view) {
        view = new MessageView(this.doc, this.strings, this.config.title, this.actions);
        this.views.set(message.key, view);
        added ||= message.role === "user";
      }
      view.update(message);
      if (previous.nextSibling !== view.el) previous.after(view.el);
      previous = view.el;
    }
    for (const [key, view] of this.views) {
      if (!keys.has(key)) {
        view.el.remove();
        this.views.delete(key);
      }
    }
    this.suggestions.hidden = conversation.messages.some((m) => m.role === "user");
    this.typing.hidden = conversation.typing === null;
    if (stick || added) this.log.scrollTop = this.log.scrollHeight;
  }

  private statusText(status: LinkStatus): string {
    switch (status) {
      case "connecting":
        return this.strings.connecting;
      case "online":
        return this.strings.online;
      case "reconnecting":
      case "error":
        return this.strings.reconnecting;
      default:
        return "";
    }
  }

  private noticeText(conversation: Conversation, status: LinkStatus): string {
    if (status === "offline") return this.strings.offline;
    const notice = conversation.notice;
    if (notice) {
      if (notice.code === "limit_reached") return notice.text || this.strings.somethingWrong;
      if (notice.code === "rate_limited") return this.strings.rateLimited;
      if (notice.code === "too_long") return this.strings.tooLong;
      return this.strings.somethingWrong;
    }
    return status === "error" ? this.strings.unreachable : "";
  }

  private el<K extends keyof HTMLElementTagNameMap>(tag: K, className = ""): HTMLElementTagNameMap[K] {
    const node = this.doc.createElement(tag);
    if (className) node.className = className;
    return node;
  }

  private button(className: string, label: string): HTMLButtonElement {
    const button = this.el("button", className);
    button.type = "button";
    if (label) button.setAttribute("aria-label", label);
    return button;
  }

  private buildLauncher(): HTMLButtonElement {
    const launcher = this.button("launcher", this.strings.openChat);
    launcher.setAttribute("aria-expanded", "false");
    launcher.setAttribute("aria-controls", PANEL_ID);
    const image = safeHttpUrl(this.config.launcherIcon);
    if (image) {
      const img = this.el("img");
      img.alt = "";
      img.src = image;
      launcher.append(img);
    } else {
      launcher.append(icon(this.doc, launcherIconName(this.config.launcherIcon)));
    }
    launcher.addEventListener("click", () => this.setOpen(!this.isOpen, true));
    return launcher;
  }

  private buildGreeting(show: boolean): HTMLElement {
    const greeting = this.el("div", "greeting");
    greeting.hidden = !show || this.config.greeting === "";
    const text = this.button("greeting-text", "");
    text.textContent = this.config.greeting;
    text.addEventListener("click", () => this.setOpen(true, true));
    const close = this.button("greeting-close", this.strings.dismissGreeting);
    close.append(icon(this.doc, "close"));
    close.addEventListener("click", () => {
      greeting.hidden = true;
      this.actions.dismissGreeting();
      this.launcher.focus();
    });
    greeting.append(text, close);
    return greeting;
  }

  private buildHeader(): HTMLElement {
    const header = this.el("div", "head");
    const avatar = this.el("div", "avatar");
    avatar.setAttribute("aria-hidden", "true");
    const initial = () => {
      avatar.textContent = (Array.from(this.config.title.trim())[0] ?? "?").toUpperCase();
    };
    const avatarUrl = safeHttpUrl(this.config.avatarUrl);
    if (avatarUrl) {
      const img = this.el("img");
      img.alt = "";
      img.addEventListener("error", initial);
      img.src = avatarUrl;
      avatar.append(img);
    } else {
      initial();
    }
    const text = this.el("div", "head-text");
    const title = this.el("div", "title");
    title.textContent = this.config.title;
    text.append(title, this.statusLine);
    const close = this.button("close", this.strings.closeChat);
    close.append(icon(this.doc, "close"));
    close.addEventListener("click", () => this.setOpen(false, true));
    header.append(avatar, text, close);
    return header;
  }

  private buildWelcome(): HTMLElement {
    const welcome = this.el("div", "msg assistant");
    const bubble = this.el("div", "bubble");
    fillBubble(bubble, { role: "assistant", text: this.config.welcomeMessage, citations: [] });
    welcome.append(bubble);
    welcome.hidden = this.config.welcomeMessage.trim() === "";
    return welcome;
  }

  private fillSuggestions(): void {
    for (const question of this.config.suggestedQuestions) {
      const button = this.button("", "");
      button.textContent = question;
      button.addEventListener("click", () => {
        this.actions.send(question);
        this.input.focus();
      });
      this.suggestions.append(button);
    }
  }

  private buildTyping(): HTMLElement {
    const typing = this.el("div", "typing");
    typing.hidden = true;
    const label = this.el("span", "sr");
    label.textContent = this.strings.typing;
    typing.append(label);
    for (let i = 0; i < 3; i++) {
      const dot = this.el("i");
      dot.setAttribute("aria-hidden", "true");
      typing.append(dot);
    }
    return typing;
  }

  private buildComposer(): HTMLFormElement {
    const form = this.el("form", "composer");
    const input = this.input;
    input.rows = 1;
    input.maxLength = this.config.maxMessageChars;
    input.placeholder = this.strings.placeholder;
    input.setAttribute("aria-label", this.strings.inputLabel);
    const send = this.button("send", this.strings.send);
    send.type = "submit";
    send.append(icon(this.doc, "send"));
    const submit = () => {
      const text = input.value.trim();
      if (text === "") return;
      this.actions.send(text);
      input.value = "";
      this.fitInput();
    };
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      submit();
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        submit();
      }
    });
    input.addEventListener("input", () => this.fitInput());
    form.append(input, send);
    return form;
  }

  /** The input grows with its text, up to the CSS max-height. */
  private fitInput(): void {
    const input = this.input;
    input.style.height = "";
    if (input.value !== "") input.style.height = `${input.scrollHeight}px`;
  }
}
