// Prints the gzipped JavaScript the first route needs (the entry chunk and the chunks it
// imports statically) and fails above the budget; the other routes load their own chunks.
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

const BUDGET = 200 * 1024;
const dist = new URL("../dist/", import.meta.url);

let manifest;
try {
  manifest = JSON.parse(readFileSync(new URL(".vite/manifest.json", dist), "utf8"));
} catch {
  console.error("dist/.vite/manifest.json not found: run `npm run build` first");
  process.exit(1);
}

const entry = Object.keys(manifest).find((key) => manifest[key].isEntry);
const files = new Set();
const visit = (key) => {
  const chunk = manifest[key];
  if (!chunk || files.has(chunk.file)) return;
  files.add(chunk.file);
  for (const imported of chunk.imports ?? []) visit(imported);
};
visit(entry);

const kb = (bytes) => `${(bytes / 1024).toFixed(1)} KB`;
let total = 0;
for (const file of files) {
  const gzipped = gzipSync(readFileSync(new URL(file, dist)), { level: 9 }).length;
  total += gzipped;
  console.log(`  ${file}: ${kb(gzipped)} gzipped`);
}
const lazy = Object.values(manifest).filter((chunk) => chunk.isDynamicEntry).length;
console.log(`first route: ${kb(total)} gzipped JavaScript (budget ${kb(BUDGET)}); ${lazy} routes load apart`);
if (total > BUDGET) {
  console.error(`over budget by ${total - BUDGET} bytes`);
  process.exit(1);
}
