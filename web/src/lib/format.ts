// Formatting shared by the pages: dates, money in micro-units, sizes, the widget snippet.

export function formatDate(value: string | null | undefined, locale: string): string {
  if (!value) return "—";
  return new Date(value).toLocaleString(locale, { dateStyle: "medium", timeStyle: "short" });
}

/** Micro-units (millionths of the billing currency) as dollars, with cents' precision or more. */
export function formatCost(micros: number): string {
  const dollars = micros / 1_000_000;
  return `$${dollars < 0.01 && dollars > 0 ? dollars.toFixed(6) : dollars.toFixed(2)}`;
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

export function percent(used: number, limit: number): number {
  if (limit <= 0) return 100;
  return Math.min(100, Math.round((used / limit) * 100));
}

/** The tag a business pastes into its pages: the widget script with the assistant's key. */
export function widgetSnippet(origin: string, publicKey: string): string {
  return `<script src="${origin}/widget.js" data-assistant="${publicKey}" async></script>`;
}
