// Vite for the TaskPilot React example.
//
// - `taskpilot/*` are TaskPilot's own browser modules (src/app/static/), the ones the page at `/`
//   uses, so both front ends follow the same rules from one file each:
//   `taskpilot/hosted-session` (getClientSecret), `taskpilot/entities` (tasks as ChatKit entities:
//   the tag search and what a click names) and `taskpilot/chatkit-options` (the client tool, the
//   item actions, the composer's choices). They are plain JS without the DOM; a copy of this app
//   outside the repository copies them too (and api.js, which chatkit-options.js imports).
// - `npm run dev` proxies TaskPilot's routes to TASKPILOT_PROXY_TARGET (default `make run`'s
//   http://127.0.0.1:8000), so in development the app and the API share an origin and TaskPilot
//   needs no CORS_ORIGINS. The Host header is passed through unchanged (changeOrigin: false) so
//   the attachment upload URLs TaskPilot signs point back at this dev server.
import { fileURLToPath } from "node:url";

import react from "@vitejs/plugin-react";
import { defineConfig, loadEnv } from "vite";

const pageModule = (name) => fileURLToPath(new URL(`../../src/app/static/${name}`, import.meta.url));
const shared = {
  "taskpilot/hosted-session": pageModule("hosted-session.js"),
  "taskpilot/entities": pageModule("entities.js"),
  "taskpilot/chatkit-options": pageModule("chatkit-options.js"),
};

export default defineConfig(({ command, mode }) => {
  const env = loadEnv(mode, process.cwd(), "");
  const target = env.TASKPILOT_PROXY_TARGET || "http://127.0.0.1:8000";
  const proxied = { target, changeOrigin: false };
  return {
    plugins: [react()],
    resolve: { alias: shared },
    server: {
      fs: { allow: [".", ...Object.values(shared), pageModule("api.js")] },
      proxy: { "/api": proxied, "/chatkit": proxied },
    },
    // TaskPilot's own page under the dev proxy (this app's `/` is not it); a build has no proxy.
    define: { __TASKPILOT_PROXY_TARGET__: JSON.stringify(command === "serve" ? `${target.replace(/\/$/, "")}/` : "") },
    build: { sourcemap: false },
  };
});
