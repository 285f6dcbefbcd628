import { cleanup, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";
import { ApiError } from "../src/auth/session";
import { Answer } from "../src/components/Answer";
import { ErrorNote } from "../src/components/ui";

afterEach(cleanup);

describe("ErrorNote", () => {
  it("shows the server's message and the refused fields", () => {
    render(<ErrorNote error={new ApiError(422, "Some fields are not valid: slug.", [{ field: "slug", message: "taken" }])} />);
    expect(screen.getByRole("alert").textContent).toContain("Some fields are not valid: slug.");
    expect(screen.getByText("slug: taken")).toBeTruthy();
  });

  it("shows nothing without an error", () => {
    const { container } = render(<ErrorNote error={null} />);
    expect(container.innerHTML).toBe("");
  });
});

describe("Answer", () => {
  it("links each [n] to its numbered source, and text stays text", () => {
    render(<Answer text={"Open at 10:00 [1] <b>bold</b>"} citations={[{ number: 1, title: "Handbook", url: "https://shop.example/h" }]} />);
    const marker = screen.getByRole("link", { name: "[1]" });
    const target = marker.getAttribute("href")?.slice(1) ?? "";
    expect(document.getElementById(target)?.textContent).toContain("Handbook");
    expect(screen.getByText(/<b>bold<\/b>/)).toBeTruthy();
    expect(screen.getByRole("link", { name: "Handbook" }).getAttribute("href")).toBe("https://shop.example/h");
  });
});
