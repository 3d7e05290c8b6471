// Builds the dashboard into the Python package (controlplane/api/dashboard_assets/), served by
// the controller's API under /dashboard/. Everything is bundled: no CDN at run time.
import { defineConfig } from "vite";
import { fileURLToPath } from "node:url";

export default defineConfig({
  base: "/dashboard/",
  build: {
    outDir: fileURLToPath(new URL("../controlplane/api/dashboard_assets", import.meta.url)),
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: false,
    chunkSizeWarningLimit: 200,
  },
});
