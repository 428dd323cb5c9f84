import { defineConfig } from "vite";

// The app is served from the binary by Tauri: no dev server, no remote
// content. Everything is emitted as files (no inline script or style, which
// the CSP would refuse anyway).
export default defineConfig({
  clearScreen: false,
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "safari15",
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
  },
});
