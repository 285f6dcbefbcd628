/// <reference types="vitest/config" />
// One self-contained file, dist/widget.js: an IIFE a business's page loads with a <script> tag.
import { defineConfig } from "vite";

export default defineConfig({
  build: {
    target: "es2019",
    minify: "esbuild",
    sourcemap: false,
    emptyOutDir: true,
    lib: {
      entry: "src/main.ts",
      formats: ["iife"],
      name: "ParleyWidget",
      fileName: () => "widget.js",
    },
  },
  test: {
    environment: "jsdom",
    include: ["test/**/*.test.ts"],
    restoreMocks: true,
  },
});
