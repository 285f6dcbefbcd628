/**
 * A small Markdown renderer for answers, safe by construction: it builds elements with
 * createElement and text with text nodes, so no text from the server is ever parsed as HTML.
 * Elements made: p, br, strong, em, code, pre, ul, ol, li, a (href http/https only).
 */

import type { Citation } from "./protocol";

export interface MarkdownContext {
  /** Citation markers [n] link to the citation's URL when it has one. */
  citations?: readonly Citation[];
}

/** The URL if it is an absolute http(s) one, normalized; null for anything else. */
export function safeHttpUrl(raw: string | null | undefined): string | null {
  if (!raw) return null;
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    return null;
  }
  return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
}

export function makeLink(doc: Document, href: string, children: Node[]): HTMLAnchorElement {
  const a = doc.createElement("a");
  a.setAttribute("href", href);
  a.setAttribute("target", "_blank");
  a.setAttribute("rel", "noopener noreferrer nofollow");
  a.append(...children);
  return a;
}

// --- Blocks.

const FENCE = /^ {0,3}(`{3,}|~{3,})/;
const HEADING = /^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$/;
const ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;
const RULE = /^ {0,3}([-*_])(\s*\1){2,}\s*$/;
const QUOTE = /^ {0,3}> ?/;

const isBlank = (line: string): boolean => line.trim() === "";
const startsBlock = (line: string): boolean =>
  FENCE.test(line) || HEADING.test(line) || ITEM.test(line) || RULE.test(line);

interface Item {
  indent: number;
  ordered: boolean;
  text: string;
}

function parseItem(line: string): Item | null {
  const match = ITEM.exec(line);
  if (!match) return null;
  const [, space = "", marker = "", text = ""] = match;
  return { indent: space.replace(/\t/g, "    ").length, ordered: /\d/.test(marker), text };
}

class BlockRenderer {
  private i = 0;

  constructor(
    private readonly doc: Document,
    private readonly lines: string[],
    private readonly context: MarkdownContext,
  ) {}

  render(): DocumentFragment {
    const out = this.doc.createDocumentFragment();
    while (this.i < this.lines.length) {
      const line = this.lines[this.i] ?? "";
      const fence = FENCE.exec(line);
      if (isBlank(line) || RULE.test(line)) {
        this.i++;
      } else if (fence) {
        out.append(this.codeBlock(fence[1] ?? "```"));
      } else if (HEADING.test(line)) {
        const p = this.el("p");
        p.append(this.strong(HEADING.exec(line)?.[1] ?? ""));
        out.append(p);
        this.i++;
      } else if (ITEM.test(line)) {
        out.append(this.list(parseItem(line)?.indent ?? 0));
      } else {
        out.append(this.paragraph());
      }
    }
    return out;
  }

  private el<K extends keyof HTMLElementTagNameMap>(tag: K): HTMLElementTagNameMap[K] {
    return this.doc.createElement(tag);
  }

  private strong(text: string): HTMLElement {
    const strong = this.el("strong");
    strong.append(...renderInline(this.doc, text, this.context));
    return strong;
  }

  private codeBlock(marker: string): HTMLElement {
    const body: string[] = [];
    // Up to the closing fence, or to the end while the answer is still streaming.
    for (this.i++; this.i < this.lines.length; this.i++) {
      const line = this.lines[this.i] ?? "";
      if (line.trim().startsWith(marker) && line.trim().replace(/[`~]/g, "") === "") {
        this.i++;
        break;
      }
      body.push(line);
    }
    const pre = this.el("pre");
    const code = this.el("code");
    code.textContent = body.join("\n");
    pre.append(code);
    return pre;
  }

  private paragraph(): HTMLElement {
    const body: string[] = [];
    while (this.i < this.lines.length) {
      const line = this.lines[this.i] ?? "";
      if (isBlank(line) || (body.length > 0 && startsBlock(line))) break;
      body.push(line.replace(QUOTE, "").trim());
      this.i++;
    }
    const p = this.el("p");
    p.append(...renderInline(this.doc, body.join("\n"), this.context));
    return p;
  }

  /** Items at `indent` and deeper; deeper ones nest in the item before them. */
  private list(indent: number): HTMLElement {
    const first = parseItem(this.lines[this.i] ?? "");
    const ordered = first?.ordered ?? false;
    const list = this.el(ordered ? "ol" : "ul");
    let current: HTMLLIElement | null = null;
    while (this.i < this.lines.length) {
      const line = this.lines[this.i] ?? "";
      const item = parseItem(line);
      if (item && item.indent > indent + 1 && current) {
        current.append(this.list(item.indent));
        continue;
      }
      if (item && item.indent >= indent - 1 && item.ordered === ordered) {
        current = this.el("li");
        current.append(...renderInline(this.doc, item.text, this.context));
        list.append(current);
        this.i++;
      } else if (!item && current && !isBlank(line) && !startsBlock(line) && /^\s/.test(line)) {
        // An indented line continues the item above it.
        current.append(this.el("br"), ...renderInline(this.doc, line.trim(), this.context));
        this.i++;
      } else if (isBlank(line) && this.nextItemContinues(indent, ordered)) {
        this.i++;
      } else {
        break;
      }
    }
    return list;
  }

  private nextItemContinues(indent: number, ordered: boolean): boolean {
    let j = this.i;
    while (j < this.lines.length && isBlank(this.lines[j] ?? "")) j++;
    const next = parseItem(this.lines[j] ?? "");
    if (next === null || next.indent < indent - 1) return false;
    return next.ordered === ordered || next.indent > indent + 1;
  }
}

// --- Inline: code spans, **strong**, *em*, [links](url), citation markers [n], bare URLs.

const MAX_DEPTH = 6;
const MAX_URL = 2048;
const BARE_URL = /^https?:\/\/[^\s<>"'`]+/;
const CITATION = /^\[(\d{1,3})\]/;

const isSpace = (ch: string | undefined): boolean => ch === undefined || /\s/.test(ch);
const isWordChar = (ch: string | undefined): boolean => ch !== undefined && /[\p{L}\p{N}]/u.test(ch);

class InlineRenderer {
  private readonly out: Node[] = [];
  private text = "";
  /**
   * Per delimiter, a position from which no closer exists: whether a delimiter can close depends
   * only on its neighbours, so later openers need not search again (linear on unmatched markers).
   */
  private readonly noCloserFrom = new Map<string, number>();

  constructor(
    private readonly doc: Document,
    private readonly context: MarkdownContext,
    private readonly depth: number,
    private readonly inLink: boolean,
  ) {}

  render(source: string): Node[] {
    let i = 0;
    while (i < source.length) {
      const consumed = this.markup(source, i);
      if (consumed > 0) {
        i += consumed;
      } else {
        this.text += source[i];
        i++;
      }
    }
    this.flush();
    return this.out;
  }

  /** Renders the markup that starts at `i` and answers its length, or 0 for a plain character. */
  private markup(s: string, i: number): number {
    const ch = s[i];
    if (ch === "\\" && i + 1 < s.length && /[!-/:-@[-`{-~]/.test(s[i + 1] ?? "")) {
      this.text += s[i + 1];
      return 2;
    }
    if (ch === "`") return this.codeSpan(s, i);
    if (this.depth >= MAX_DEPTH) return 0;
    if (ch === "*" || ch === "_") {
      return s[i + 1] === ch ? this.emphasis(s, i, ch + ch, "strong") : this.emphasis(s, i, ch, "em");
    }
    if (ch === "[") return this.bracket(s, i);
    if (ch === "h" && !this.inLink && !isWordChar(s[i - 1])) return this.bareUrl(s, i);
    return 0;
  }

  private flush(): void {
    if (this.text === "") return;
    this.text.split("\n").forEach((line, index) => {
      if (index > 0) this.out.push(this.doc.createElement("br"));
      if (line !== "") this.out.push(this.doc.createTextNode(line));
    });
    this.text = "";
  }

  private push(node: Node): void {
    this.flush();
    this.out.push(node);
  }

  private children(source: string, inLink = this.inLink): Node[] {
    return new InlineRenderer(this.doc, this.context, this.depth + 1, inLink).render(source);
  }

  private codeSpan(s: string, i: number): number {
    let run = 1;
    while (s[i + run] === "`") run++;
    const fence = "`".repeat(run);
    let close = s.indexOf(fence, i + run);
    while (close >= 0 && s[close + run] === "`") close = s.indexOf(fence, close + run + 1);
    if (close < 0) {
      this.text += fence;
      return run;
    }
    const code = this.doc.createElement("code");
    code.textContent = s.slice(i + run, close).replace(/\n/g, " ");
    this.push(code);
    return close + run - i;
  }

  private emphasis(s: string, i: number, delim: string, tag: "strong" | "em"): number {
    const start = i + delim.length;
    if (isSpace(s[start])) return 0;
    // `_` inside words (snake_case) is not emphasis.
    if (delim[0] === "_" && isWordChar(s[i - 1])) return 0;
    if (start + 1 >= (this.noCloserFrom.get(delim) ?? Infinity)) return 0;
    let close = s.indexOf(delim, start + 1);
    while (close >= 0) {
      const single = delim.length === 1 && (s[close + 1] === delim || s[close - 1] === delim);
      const wordy = delim[0] === "_" && isWordChar(s[close + delim.length]);
      if (!isSpace(s[close - 1]) && !single && !wordy) break;
      close = s.indexOf(delim, close + (single ? 2 : 1));
    }
    if (close < 0) {
      this.noCloserFrom.set(delim, start + 1);
      return 0;
    }
    const el = this.doc.createElement(tag);
    el.append(...this.children(s.slice(start, close)));
    this.push(el);
    return close + delim.length - i;
  }

  private bracket(s: string, i: number): number {
    const citation = CITATION.exec(s.slice(i, i + 5));
    if (citation && s[i + citation[0].length] !== "(") {
      const number = Number(citation[1]);
      const source = this.context.citations?.find((c) => c.number === number);
      const href = safeHttpUrl(source?.url);
      if (!href || this.inLink) return 0;
      this.push(makeLink(this.doc, href, [this.doc.createTextNode(citation[0])]));
      return citation[0].length;
    }
    const labelEnd = s.indexOf("]", i + 1);
    if (labelEnd < 0 || s[labelEnd + 1] !== "(" || s.lastIndexOf("[", labelEnd) !== i) return 0;
    const urlEnd = closingParen(s, labelEnd + 1);
    if (urlEnd < 0) return 0;
    const label = s.slice(i + 1, labelEnd);
    const target = s.slice(labelEnd + 2, urlEnd).trim().split(/\s+/)[0] ?? "";
    const href = this.inLink ? null : safeHttpUrl(target.replace(/^<(.*)>$/, "$1"));
    if (href) {
      this.push(makeLink(this.doc, href, this.children(label, true)));
    } else {
      // A link to anything but http(s) keeps its words and loses its target.
      this.flush();
      this.out.push(...this.children(label));
    }
    return urlEnd + 1 - i;
  }

  private bareUrl(s: string, i: number): number {
    const match = BARE_URL.exec(s.slice(i, i + MAX_URL));
    if (!match) return 0;
    let url = match[0];
    // Sentence punctuation after a URL is not part of it; nor is an unbalanced closing paren.
    for (;;) {
      const last = url[url.length - 1] ?? "";
      const unbalanced = last === ")" && url.split("(").length < url.split(")").length;
      if (!/[.,:;!?*_]/.test(last) && !unbalanced) break;
      url = url.slice(0, -1);
    }
    const href = safeHttpUrl(url);
    if (!href || url.length <= "https://".length) return 0;
    this.push(makeLink(this.doc, href, [this.doc.createTextNode(url)]));
    return url.length;
  }
}

/** Index of the `)` that closes the `(` at `open`, counting nested pairs; -1 if none. */
function closingParen(s: string, open: number): number {
  let depth = 0;
  for (let j = open; j < Math.min(s.length, open + MAX_URL); j++) {
    const ch = s[j];
    if (ch === "\n") return -1;
    if (ch === "(") depth++;
    else if (ch === ")" && --depth === 0) return j;
  }
  return -1;
}

export function renderInline(doc: Document, source: string, context: MarkdownContext = {}): Node[] {
  return new InlineRenderer(doc, context, 0, false).render(source);
}

export function renderMarkdown(
  doc: Document,
  source: string,
  context: MarkdownContext = {},
): DocumentFragment {
  const lines = source.replace(/\r\n?/g, "\n").split("\n");
  return new BlockRenderer(doc, lines, context).render();
}
