import { defineConfig } from "vite";

// The bundle is committed (../dist) and embedded in the gateway binary; CI rebuilds it and
// fails when it differs, so the build must be deterministic: no source maps, no timestamps.
export default defineConfig({
  base: "./",
  build: {
    outDir: "../dist",
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: false,
    // Everything is served from the gateway itself: one request per file is cheap.
    chunkSizeWarningLimit: 2000,
    modulePreload: { polyfill: false },
    rollupOptions: {
      onwarn(warning, warn) {
        // Mantine marks its modules "use client" for React Server Components; meaningless here.
        if (warning.code === "MODULE_LEVEL_DIRECTIVE") return;
        warn(warning);
      },
    },
  },
  oxc: {
    jsx: { runtime: "automatic" },
  },
});
