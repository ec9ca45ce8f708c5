// What TaskPilot's self-hosted ChatKit options are made of, in plain JS with no DOM: the page at
// `/` (app.js) and examples/react (a Vite alias) import this one module, so both answer the
// client tool, turn on the item actions and offer the composer's choices the same way.

import { browserTimeZone } from "./api.js";

export { browserTimeZone };

/** ChatKit's `threadItemActions`: thumbs up/down (stored, `taskpilot feedback export`) and retry. */
export const THREAD_ITEM_ACTIONS = Object.freeze({ feedback: true, retry: true });

/**
 * The client tools `answerClientTool` answers, as TaskPilot reads them from every /chatkit request:
 * without this header the server never asks a client tool (a stock ChatKit front end answers none)
 * and dates are in its DEFAULT_TIME_ZONE unless a `Time-Zone` header says otherwise.
 */
export const CLIENT_TOOLS_HEADER = "ChatKit-Client-Tools";
export const CLIENT_TOOLS = "get_time_zone";

/** `init` (of ChatKit's `api.fetch(input, init)`) with the `ChatKit-Client-Tools` header added. */
export function withClientTools(input, init = {}) {
  // A Request carries its own headers; `init.headers` would replace them, so start from those.
  const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
  if (!headers.has(CLIENT_TOOLS_HEADER)) headers.set(CLIENT_TOOLS_HEADER, CLIENT_TOOLS);
  return { ...init, headers };
}

/** ChatKit's `onClientTool`: `get_time_zone` gets the browser's IANA time zone. */
export function answerClientTool({ name }) {
  if (name === "get_time_zone") return { time_zone: browserTimeZone() ?? "UTC" };
  throw new Error(`This page has no client tool named ${name}.`);
}

/**
 * The server's composer choices (`self_hosted.composer` of /api/chatkit/health) as ChatKit's
 * `composer.tools` and `composer.models`; each is left out when the server offers none (models:
 * only with MODEL_CHOICES). The server refuses any other tool or model with a 400.
 */
export function composerChoices(composer) {
  const tools = (composer?.tools ?? []).map((tool) => ({ id: tool.id, label: tool.label, icon: tool.icon, placeholderOverride: tool.placeholder }));
  const models = (composer?.models ?? []).map((model) => ({ id: model.id, label: model.label, default: Boolean(model.default) }));
  return { ...(tools.length ? { tools } : {}), ...(models.length ? { models } : {}) };
}
