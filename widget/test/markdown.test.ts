import { describe, expect, it } from "vitest";

import { renderMarkdown, safeHttpUrl } from "../src/markdown";
import type { Citation } from "../src/protocol";

const ALLOWED = new Set(["P", "BR", "STRONG", "EM", "CODE", "PRE", "UL", "OL", "LI", "A"]);

function render(source: string, citations: Citation[] = []): HTMLElement {
  const box = document.createElement("div");
  box.append(renderMarkdown(document, source, { citations }));
  return box;
}

/** Every element is an allowed one; only links have attributes, and only safe ones. */
function assertSafe(box: HTMLElement): void {
  for (const el of Array.from(box.querySelectorAll("*"))) {
    expect(ALLOWED.has(el.tagName), `unexpected <${el.tagName}>`).toBe(true);
    const names = el.getAttributeNames();
    if (el.tagName === "A") {
      expect(names.sort()).toEqual(["href", "rel", "target"]);
      expect(el.getAttribute("href")).toMatch(/^https?:\/\//);
      expect(el.getAttribute("rel")).toBe("noopener noreferrer nofollow");
      expect(el.getAttribute("target")).toBe("_blank");
    } else {
      expect(names).toEqual([]);
    }
  }
}

describe("Markdown safety", () => {
  const payloads = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "[x](javascript:alert(1))",
    "[x](JavaScript:alert(1))",
    "[x]( javascript:alert(1) )",
    "[x](data:text/html,<script>alert(1)</script>)",
    "[x](vbscript:msgbox(1))",
    "[x](//evil.test/path)",
    "[x](/relative)",
    "javascript:alert(1)",
    "<a href=\"javascript:alert(1)\">click</a>",
    "**<b onmouseover=alert(1)>bold</b>**",
    "`<svg onload=alert(1)>`",
    "```\n<iframe src=javascript:alert(1)></iframe>\n```",
    "[<img src=x onerror=alert(1)>](https://ok.test/)",
    "[1] citation with a javascript url",
    "<style>*{display:none}</style>",
  ];

  it.each(payloads)("renders %j as inert text", (payload) => {
    const box = render(payload, [{ number: 1, title: "t", url: "javascript:alert(1)", headingPath: [] }]);
    assertSafe(box);
  });

  it("shows HTML as the literal text it is", () => {
    const box = render("Try <img src=x onerror=alert(1)> now");
    expect(box.querySelector("img")).toBeNull();
    expect(box.textContent).toBe("Try <img src=x onerror=alert(1)> now");
  });

  it("keeps the words of a link to a non-http URL and drops its target", () => {
    const box = render("[click me](javascript:alert(1))");
    expect(box.querySelector("a")).toBeNull();
    expect(box.textContent).toBe("click me");
  });

  it("accepts only absolute http(s) URLs", () => {
    expect(safeHttpUrl("https://example.com/a?b=1")).toBe("https://example.com/a?b=1");
    expect(safeHttpUrl("http://example.com")).toBe("http://example.com/");
    expect(safeHttpUrl("javascript:alert(1)")).toBeNull();
    expect(safeHttpUrl("  JAVASCRIPT:alert(1)")).toBeNull();
    expect(safeHttpUrl("/relative")).toBeNull();
    expect(safeHttpUrl("mailto:a@b.c")).toBeNull();
    expect(safeHttpUrl(null)).toBeNull();
  });
});

describe("Markdown rendering", () => {
  it("renders paragraphs and line breaks", () => {
    const box = render("First line\nsecond line\n\nNext paragraph");
    expect(box.innerHTML).toBe("<p>First line<br>second line</p><p>Next paragraph</p>");
  });

  it("renders inline formatting", () => {
    const box = render("**bold**, *italic*, _also_, `a * b`, and snake_case_name");
    expect(box.innerHTML).toBe(
      "<p><strong>bold</strong>, <em>italic</em>, <em>also</em>, <code>a * b</code>, and snake_case_name</p>",
    );
  });

  it("renders nested emphasis", () => {
    expect(render("*a **b** c*").innerHTML).toBe("<p><em>a <strong>b</strong> c</em></p>");
  });

  it("leaves unmatched markers as text", () => {
    expect(render("2 * 3 = 6 and **open").textContent).toBe("2 * 3 = 6 and **open");
  });

  it("renders code blocks verbatim, even while still streaming", () => {
    expect(render("```js\nconst a = '**x**';\n```\nafter").innerHTML).toBe(
      "<pre><code>const a = '**x**';</code></pre><p>after</p>",
    );
    expect(render("```\nunfinished <b>").innerHTML).toBe("<pre><code>unfinished &lt;b&gt;</code></pre>");
  });

  it("renders bullet and numbered lists, nested", () => {
    const box = render("Steps:\n1. Open\n2. Click **Save**\n   - quickly\n3. Done\n\n- a\n- b");
    expect(box.innerHTML).toBe(
      "<p>Steps:</p><ol><li>Open</li><li>Click <strong>Save</strong><ul><li>quickly</li></ul></li>" +
        "<li>Done</li></ol><ul><li>a</li><li>b</li></ul>",
    );
  });

  it("renders headings as bold paragraphs", () => {
    expect(render("## Opening hours\nMon-Fri").innerHTML).toBe(
      "<p><strong>Opening hours</strong></p><p>Mon-Fri</p>",
    );
  });

  it("renders http links with safe attributes, and bare URLs", () => {
    const box = render("See [the docs](https://example.com/docs) or https://example.com/faq.");
    const links = Array.from(box.querySelectorAll("a"));
    expect(links.map((a) => [a.textContent, a.getAttribute("href")])).toEqual([
      ["the docs", "https://example.com/docs"],
      ["https://example.com/faq", "https://example.com/faq"],
    ]);
    expect(box.textContent).toBe("See the docs or https://example.com/faq.");
    assertSafe(box);
  });

  it("links citation markers to their sources when they have a URL", () => {
    const citations: Citation[] = [
      { number: 1, title: "Hours", url: "https://shop.test/hours", headingPath: [] },
      { number: 2, title: "Policy", url: null, headingPath: [] },
    ];
    const box = render("Open at 9 [1][2].", citations);
    const links = Array.from(box.querySelectorAll("a"));
    expect(links.map((a) => [a.textContent, a.getAttribute("href")])).toEqual([
      ["[1]", "https://shop.test/hours"],
    ]);
    expect(box.textContent).toBe("Open at 9 [1][2].");
  });

  it("stays fast on many unmatched markers (it re-renders on every streamed piece)", () => {
    for (const unit of ["*a ", "**a ", "_a ", "[a](", "[a] "]) {
      const source = unit.repeat(7000);
      const started = performance.now();
      expect(render(source).textContent).toBe(source.trimEnd());
      expect(performance.now() - started).toBeLessThan(500);
    }
  });

  it("keeps escaped markers literal", () => {
    expect(render("\\*not italic\\*").innerHTML).toBe("<p>*not italic*</p>");
  });
});
