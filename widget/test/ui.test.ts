import { beforeEach, describe, expect, it, vi } from "vitest";

import { parseConfig } from "../src/api";
import { stringsFor } from "../src/i18n";
import { addOutgoing, applyEvent, emptyConversation } from "../src/protocol";
import type { Conversation, ServerEvent } from "../src/protocol";
import { WidgetView } from "../src/ui";
import type { ViewActions } from "../src/ui";

const config = parseConfig({
  assistant: {
    name: "Harbour Shoes",
    language: "en",
    welcome_message: "Hi! Ask me **anything**.",
    suggested_questions: ["When are you open?"],
  },
  appearance: {
    title: "Harbour Shoes",
    primary_color: "#123456",
    text_color: "#ffffff",
    position: "left",
    avatar_url: null,
    launcher_icon: "chat",
    greeting: "Questions? Ask me.",
  },
  max_message_chars: 500,
});

function mount(lang: "en" | "ru" = "en") {
  const actions: ViewActions = {
    send: vi.fn(),
    retry: vi.fn(),
    rate: vi.fn(),
    openChanged: vi.fn(),
    dismissGreeting: vi.fn(),
  };
  const view = new WidgetView(document, config, stringsFor(lang), actions, true);
  document.body.append(view.host);
  const root = view.host.shadowRoot as ShadowRoot;
  const $ = <T extends Element = HTMLElement>(selector: string) => root.querySelector(selector) as T;
  return { view, actions, root, $ };
}

const events = (c: Conversation, list: ServerEvent[]) =>
  list.reduce((acc, event) => applyEvent(acc, event).conversation, c);

beforeEach(() => {
  document.body.replaceChildren();
});

describe("the widget's view", () => {
  it("lives in a shadow root with its colours and position", () => {
    const { view, $ } = mount();
    expect(view.host.tagName).toBe("PARLEY-WIDGET");
    expect(view.host.style.getPropertyValue("--parley-p")).toBe("#123456");
    expect($(".root").classList.contains("left")).toBe(true);
    expect(document.body.querySelector(".launcher")).toBeNull();
  });

  it("opens from the launcher with ARIA kept in step, and Escape returns focus to it", () => {
    const { view, actions, root, $ } = mount();
    const launcher = $<HTMLButtonElement>(".launcher");
    const panel = $(".panel");
    expect(launcher.getAttribute("aria-expanded")).toBe("false");
    expect(launcher.getAttribute("aria-controls")).toBe(panel.id);
    expect(panel.getAttribute("role")).toBe("dialog");
    expect(panel.getAttribute("aria-label")).toBe("Chat with Harbour Shoes");
    expect(panel.hidden).toBe(true);

    launcher.click();
    expect(view.open).toBe(true);
    expect(panel.hidden).toBe(false);
    expect(launcher.getAttribute("aria-expanded")).toBe("true");
    expect(root.activeElement).toBe($("textarea"));
    expect(actions.openChanged).toHaveBeenCalledWith(true);
    expect($(".greeting").hidden).toBe(true);

    $("textarea").dispatchEvent(new KeyboardEvent("keydown", { key: "Escape", bubbles: true }));
    expect(panel.hidden).toBe(true);
    expect(root.activeElement).toBe(launcher);
    expect(actions.openChanged).toHaveBeenLastCalledWith(false);
  });

  it("sends on Enter, keeps Shift+Enter for a new line", () => {
    const { view, actions, $ } = mount();
    view.setOpen(true, true);
    const input = $<HTMLTextAreaElement>("textarea");
    expect(input.maxLength).toBe(500);
    input.value = "line one";
    input.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", shiftKey: true, bubbles: true }));
    expect(actions.send).not.toHaveBeenCalled();
    input.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true, cancelable: true }));
    expect(actions.send).toHaveBeenCalledWith("line one");
    expect(input.value).toBe("");
  });

  it("shows the welcome message and sends a suggested question", () => {
    const { actions, $ } = mount();
    expect($(".log").getAttribute("role")).toBe("log");
    expect($(".log").getAttribute("aria-live")).toBe("polite");
    expect($(".log .bubble").innerHTML).toBe("<p>Hi! Ask me <strong>anything</strong>.</p>");
    $<HTMLButtonElement>(".suggestions button").click();
    expect(actions.send).toHaveBeenCalledWith("When are you open?");
  });

  it("renders the conversation: pending, typing, streamed Markdown, citations, thumbs", () => {
    const { view, actions, root, $ } = mount();
    let c = addOutgoing(emptyConversation("c1"), "k1", "Hours? <img src=x onerror=alert(1)>");
    view.render(c, "online");
    expect($(".msg.user.pending .meta").textContent).toBe("Sending…");
    expect($(".suggestions").hidden).toBe(true);

    c = events(c, [
      {
        type: "message",
        seq: 1,
        message: {
          id: "u1", role: "user", text: "Hours? <img src=x onerror=alert(1)>", status: "complete",
          citations: [], client_id: "k1", created_at: null,
        },
      },
      { type: "typing", seq: 2, message_id: "a1" },
    ]);
    view.render(c, "online");
    expect($(".typing").hidden).toBe(false);
    expect(root.querySelectorAll(".msg.user")).toHaveLength(1);
    expect($(".msg.user .meta").hidden).toBe(true);

    c = events(c, [{ type: "delta", seq: 3, message_id: "a1", text: "We open at **9** <img src=x onerror=alert(1)>" }]);
    view.render(c, "online");
    expect($(".typing").hidden).toBe(true);
    expect($(".msg.streaming").getAttribute("aria-busy")).toBe("true");
    expect(root.querySelector("img")).toBeNull();
    expect($(".msg.streaming .rate")).toBeNull();

    c = events(c, [
      {
        type: "complete",
        seq: 4,
        message: {
          id: "a1", role: "assistant", text: "We open at **9** [1].", status: "complete", client_id: null,
          created_at: null,
          citations: [
            { number: 1, title: "Opening hours", url: "https://shop.test/hours", headingPath: ["Visit"] },
            { number: 2, title: "Internal note", url: null, headingPath: [] },
          ],
        },
      },
    ]);
    view.render(c, "online");
    const answer = root.querySelectorAll(".msg.assistant")[1] as HTMLElement;
    expect(answer.querySelector(".bubble strong")?.textContent).toBe("9");
    expect(answer.querySelector(".bubble a")?.getAttribute("href")).toBe("https://shop.test/hours");
    const sources = Array.from(answer.querySelectorAll(".sources li"));
    expect(sources.map((li) => li.textContent)).toEqual(["[1] Opening hours › Visit", "[2] Internal note"]);
    expect(sources[1]?.querySelector("a")).toBeNull();

    const down = answer.querySelector<HTMLButtonElement>('.rate button[aria-label="Not helpful"]');
    down?.click();
    expect(actions.rate).toHaveBeenCalledWith("a1", "down");
  });

  it("tells the visitor about limits, being offline, and a refused message", () => {
    const { view, actions, $ } = mount();
    let c = addOutgoing(emptyConversation("c1"), "k1", "hi");
    c = events(c, [
      { type: "error", code: "limit_reached", message: "You have used today's messages.", client_id: "k1" },
    ]);
    view.render(c, "online");
    expect($(".banner").hidden).toBe(false);
    expect($(".banner").textContent).toBe("You have used today's messages.");
    $<HTMLButtonElement>(".meta button").click();
    expect(actions.retry).toHaveBeenCalledWith("k1");

    view.render(emptyConversation("c1"), "offline");
    expect($(".banner").textContent).toMatch(/offline/);
    view.render(emptyConversation("c1"), "reconnecting");
    expect($(".banner").hidden).toBe(true);
    expect($(".status").textContent).toBe("Reconnecting…");
  });

  it("speaks Russian when asked", () => {
    const { $ } = mount("ru");
    expect($(".launcher").getAttribute("aria-label")).toBe("Открыть чат");
    expect($("textarea").getAttribute("placeholder")).toBe("Напишите сообщение…");
  });

  it("counts answers that arrive while closed", () => {
    const { view, $ } = mount();
    view.addUnread();
    view.addUnread();
    expect($(".badge").hidden).toBe(false);
    expect($(".badge").textContent).toBe("2");
    view.setOpen(true, false);
    expect($(".badge").hidden).toBe(true);
  });
});
