import { describe, expect, it } from "vitest";

import { chooseLang, fill, stringsFor } from "../src/i18n";

describe("choosing the language", () => {
  it("takes data-lang first, then <html lang>, then the browser's", () => {
    expect(chooseLang("ru", "en", "en-US")).toBe("ru");
    expect(chooseLang("en", "ru", "ru-RU")).toBe("en");
    expect(chooseLang(undefined, "ru-RU", "en-US")).toBe("ru");
    expect(chooseLang("", "", "ru")).toBe("ru");
    expect(chooseLang(null, "  ", "RU-ru")).toBe("ru");
    expect(chooseLang(undefined, "de", "ru")).toBe("en");
    expect(chooseLang(undefined, undefined, undefined)).toBe("en");
  });

  it("has every string in both languages", () => {
    const en = stringsFor("en");
    const ru = stringsFor("ru");
    expect(Object.keys(ru).sort()).toEqual(Object.keys(en).sort());
    for (const value of Object.values(ru)) expect(value).not.toBe("");
    expect(ru.send).toBe("Отправить");
  });

  it("fills placeholders", () => {
    expect(fill("Chat with {name}", { name: "Harbour" })).toBe("Chat with Harbour");
    expect(fill("{missing}", {})).toBe("{missing}");
  });
});
