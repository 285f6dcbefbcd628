/// <reference types="vitest/config" />
// The dashboard: a single-page app served by Parley at /app, one chunk per route.
import tailwindcss from "@tailwindcss/vite";
import { defineConfig } from "vite";

export default defineConfig({
  base: "/app/",
  plugins: [tailwindcss()],
  esbuild: { jsx: "automatic" },
  build: {
    target: "es2020",
    sourcemap: false,
    emptyOutDir: true,
    manifest: true,
    rollupOptions: {
      // TanStack Query marks its modules "use client" for server-component bundlers; a browser
      // bundle has no use for it.
      onwarn(warning, warn) {
        if (warning.code !== "MODULE_LEVEL_DIRECTIVE") warn(warning);
      },
    },
  },
  server: {
    port: 8700,
    proxy: { "/api": "http://127.0.0.1:8000", "/widget.js": "http://127.0.0.1:8000" },
  },
  test: {
    environment: "jsdom",
    include: ["test/**/*.test.{ts,tsx}"],
    restoreMocks: true,
  },
});
