// Build of the dashboard's browser UI. The output folder is embedded in `runicorn-hub` by
// `web/build.rs`; `npm run dev` proxies the API to a running hub (RUNICORN_API, default :23300).
import { defineConfig } from "vite";

const api = process.env.RUNICORN_API ?? "http://127.0.0.1:23300";

export default defineConfig({
  base: "./",
  build: {
    outDir: "dist",
    target: "es2022",
    sourcemap: false,
    // One small bundle: no framework, uPlot is the only dependency.
    chunkSizeWarningLimit: 300,
  },
  server: {
    // changeOrigin: the hub answers only requests whose Host is its own address.
    proxy: { "/api": { target: api, changeOrigin: true } },
  },
  test: {
    include: ["tests/unit/**/*.test.ts"],
    environment: "node",
  },
} as never);
