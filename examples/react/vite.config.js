// Vite for the TaskPilot React example.
//
// - `taskpilot/hosted-session` is TaskPilot's own module (src/app/static/hosted-session.js), the
//   one the page at `/` uses: both front ends follow the same getClientSecret rules, from one file.
// - `npm run dev` proxies TaskPilot's routes to TASKPILOT_PROXY_TARGET (default `make run`'s
//   http://127.0.0.1:8000), so in development the app and the API share an origin and TaskPilot
//   needs no CORS_ORIGINS. The Host header is passed through unchanged (changeOrigin: false) so
//   the attachment upload URLs TaskPilot signs point back at this dev server.
import { fileURLToPath } from "node:url";

import react from "@vitejs/plugin-react";
import { defineConfig, loadEnv } from "vite";

const sharedModule = fileURLToPath(new URL("../../src/app/static/hosted-session.js", import.meta.url));

export default defineConfig(({ mode }) => {
  const env = loadEnv(mode, process.cwd(), "");
  const target = env.TASKPILOT_PROXY_TARGET || "http://127.0.0.1:8000";
  const proxied = { target, changeOrigin: false };
  return {
    plugins: [react()],
    resolve: { alias: { "taskpilot/hosted-session": sharedModule } },
    server: {
      fs: { allow: [".", sharedModule] },
      proxy: { "/api": proxied, "/chatkit": proxied },
    },
    build: { sourcemap: false },
  };
});
