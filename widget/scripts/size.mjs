// Prints the gzipped size of dist/widget.js and fails above the budget: the widget loads on
// every page of a business's site, so its weight is part of the product.
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

const BUDGET = 25 * 1024;
const path = new URL("../dist/widget.js", import.meta.url);

let source;
try {
  source = readFileSync(path);
} catch {
  console.error("dist/widget.js not found: run `npm run build` first");
  process.exit(1);
}
const gzipped = gzipSync(source, { level: 9 }).length;
const kb = (bytes) => `${(bytes / 1024).toFixed(1)} KB`;
console.log(`widget.js: ${kb(source.length)} raw, ${kb(gzipped)} gzipped (${gzipped} bytes; budget ${kb(BUDGET)})`);
if (gzipped > BUDGET) {
  console.error(`over budget by ${gzipped - BUDGET} bytes`);
  process.exit(1);
}
