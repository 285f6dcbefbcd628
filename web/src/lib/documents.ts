// Documents' live status: the table polls while any document is still being processed.
import type { Schemas } from "../api/client";

type Document = Schemas["DocumentRead"];

export const POLL_MS = 1500;

export function isSettled(document: Document): boolean {
  return document.status === "ready" || document.status === "failed";
}

export function pollInterval(documents: Document[]): number | false {
  return documents.some((d) => !isSettled(d)) ? POLL_MS : false;
}

/** How far along a document is, 0–100; a document with no chunks yet is at 0. */
export function progressOf(document: Document): number {
  if (document.status === "ready") return 100;
  if (!document.chunks_total) return 0;
  return Math.floor((document.chunks_done / document.chunks_total) * 100);
}

export const STATUS_TONE = { queued: "slate", processing: "amber", ready: "green", failed: "red" } as const;
