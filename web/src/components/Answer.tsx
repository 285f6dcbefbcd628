// An assistant's answer with its [n] markers linked to the numbered sources below it.
import { useId } from "react";
import { useT } from "../i18n";
import { splitCitations } from "../lib/ask";

export interface CitationView {
  number: number;
  title?: string | null;
  filename?: string | null;
  url?: string | null;
  passage?: string;
  score?: number;
}

export function citationsOf(raw: unknown[]): CitationView[] {
  return raw.filter((c): c is CitationView => typeof c === "object" && c !== null && "number" in c);
}

export function Answer({ text, citations }: { text: string; citations: CitationView[] }) {
  const t = useT();
  const prefix = useId();
  return (
    <div>
      <p className="whitespace-pre-wrap">
        {splitCitations(text).map((part, i) =>
          typeof part === "number" ? (
            <a key={i} href={`#${prefix}-${part}`} className="align-super text-xs text-indigo-700 underline">
              [{part}]
            </a>
          ) : (
            <span key={i}>{part}</span>
          ),
        )}
      </p>
      {citations.length ? (
        <ol className="mt-2 space-y-1 border-t border-slate-200 pt-2 text-xs text-slate-600" aria-label={t("citations")}>
          {citations.map((c) => (
            <li key={c.number} id={`${prefix}-${c.number}`} className="citation">
              [{c.number}]{" "}
              {c.url ? (
                <a className="underline" href={c.url} target="_blank" rel="noreferrer">
                  {c.title ?? c.url}
                </a>
              ) : (
                <span>{c.title ?? c.filename ?? t("citations.source")}</span>
              )}
            </li>
          ))}
        </ol>
      ) : null}
    </div>
  );
}
