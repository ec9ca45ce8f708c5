// JSON from TaskPilot's REST API through the app's `fetch` (bearer token and Time-Zone): what the
// task list loads, and what the composer's tag search (entities.js) calls.

import { problemMessage } from "./auth.js";

/** `{url(path), json(path, init)}` for paths under TaskPilot's base URL ("/api/tasks" or "api/tasks"). */
export function restClient(apiBase, apiFetch) {
  const url = (path) => new URL(String(path).replace(/^\/+/, ""), apiBase).toString();
  return {
    url,
    async json(path, init = {}) {
      const response = await apiFetch(url(path), init);
      if (!response.ok) throw new Error(await problemMessage(response));
      return response.status === 204 ? null : response.json();
    },
  };
}
