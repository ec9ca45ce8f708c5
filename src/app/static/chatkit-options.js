// What TaskPilot's ChatKit options are made of, in plain JS with no DOM: the page at `/` (app.js)
// builds its options with `selfHostedOptions` / `hostedOptions` here, and examples/react (a Vite
// alias) imports the client tool, the item actions and the composer's choices, so both answer the
// client tool, turn on the item actions and offer the composer's choices the same way.
//
// Typed (JSDoc) by `@openai/chatkit`'s own published types: `typecheck/` runs
// `tsc --noEmit --checkJs` over this module, and examples/react's `tsc` reads the same types when
// it imports it. The comments are all there is to it: the page is served as written, no build.

/**
 * @typedef {import("@openai/chatkit").ChatKitOptions} ChatKitOptions
 * @typedef {import("@openai/chatkit").ChatKitIcon} ChatKitIcon
 * @typedef {import("@openai/chatkit").Command} Command
 * @typedef {import("@openai/chatkit").CommandsOption} CommandsOption
 * @typedef {import("@openai/chatkit").ComposerOption} ComposerOption
 * @typedef {import("@openai/chatkit").CustomApiConfig} CustomApiConfig
 * @typedef {import("@openai/chatkit").EntitiesOption} EntitiesOption
 * @typedef {import("@openai/chatkit").HostedApiConfig} HostedApiConfig
 * @typedef {import("@openai/chatkit").StartScreenPrompt} StartScreenPrompt
 * @typedef {import("@openai/chatkit").ThemeOption} ThemeOption
 * @typedef {import("@openai/chatkit").ThreadItemActionsOption} ThreadItemActionsOption
 */

import { browserTimeZone } from "./api.js";

export { browserTimeZone };

/**
 * ChatKit's `threadItemActions`: thumbs up/down (stored, `taskpilot feedback export`) and retry.
 * @type {Readonly<ThreadItemActionsOption>}
 */
export const THREAD_ITEM_ACTIONS = Object.freeze({ feedback: true, retry: true });

/**
 * The client tools `answerClientTool` answers, as TaskPilot reads them from every /chatkit request:
 * without this header the server never asks a client tool (a stock ChatKit front end answers none)
 * and dates are in its DEFAULT_TIME_ZONE unless a `Time-Zone` header says otherwise.
 */
export const CLIENT_TOOLS_HEADER = "ChatKit-Client-Tools";
export const CLIENT_TOOLS = "get_time_zone";

/**
 * `init` (of ChatKit's `api.fetch(input, init)`) with the `ChatKit-Client-Tools` header added.
 * @param {RequestInfo | URL} input
 * @param {RequestInit} [init]
 * @returns {RequestInit & {headers: Headers}}
 */
export function withClientTools(input, init = {}) {
  // A Request carries its own headers; `init.headers` would replace them, so start from those.
  const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
  if (!headers.has(CLIENT_TOOLS_HEADER)) headers.set(CLIENT_TOOLS_HEADER, CLIENT_TOOLS);
  return { ...init, headers };
}

/** The request a widget action whose config says `streaming: false` is sent as (no stream). */
export const SYNC_ACTION = "threads.sync_custom_action";

/**
 * Whether a /chatkit request body is a synchronous widget action.
 * @param {BodyInit | null | undefined} body
 * @returns {boolean}
 */
export function isSyncAction(body) {
  if (typeof body !== "string" || !body.includes(SYNC_ACTION)) return false;
  try {
    return JSON.parse(body)?.type === SYNC_ACTION;
  } catch {
    return false;
  }
}

/**
 * ChatKit's `api.fetch`, calling `onSyncAction` once the server has answered a synchronous widget
 * action (Done, Reopen, an edit: `streaming: false` on the widget's action). Such an action may
 * change a task, but its answer is one redrawn widget, with no stream to carry the `tasks.changed`
 * client effect that a streamed turn sends; so the page refreshes its task panel on the answer.
 * @param {(input: RequestInfo | URL, init?: RequestInit) => Promise<Response>} fetchImpl
 * @param {(() => void) | null} [onSyncAction]
 * @returns {(input: RequestInfo | URL, init?: RequestInit) => Promise<Response>}
 */
export function afterSyncActions(fetchImpl, onSyncAction = null) {
  if (!onSyncAction) return fetchImpl;
  return async (input, init) => {
    const response = await fetchImpl(input, init);
    if (response.ok && isSyncAction(init?.body)) onSyncAction();
    return response;
  };
}

/**
 * ChatKit's `onClientTool`: `get_time_zone` gets the browser's IANA time zone.
 * @param {Parameters<NonNullable<ChatKitOptions["onClientTool"]>>[0]} toolCall
 * @returns {{time_zone: string}}
 */
export function answerClientTool({ name }) {
  if (name === "get_time_zone") return { time_zone: browserTimeZone() ?? "UTC" };
  throw new Error(`This page has no client tool named ${name}.`);
}

/**
 * What the server offers the composer: `self_hosted.composer` of GET /api/chatkit/health
 * (the OpenAPI schema `ComposerOptions`; `icon` is one of ChatKit's icon names, `command` the "/"
 * command that chooses the tool: "add" for `/add`).
 * @typedef {{
 *   tools?: ReadonlyArray<{id: string, label: string, icon: ChatKitIcon, placeholder?: string, command?: string}>,
 *   models?: ReadonlyArray<{id: string, label: string, default?: boolean}>,
 * }} ServerComposer
 */

/**
 * The server's composer choices (`self_hosted.composer` of /api/chatkit/health) as ChatKit's
 * `composer.tools` and `composer.models`; each is left out when the server offers none (models:
 * only with MODEL_CHOICES). The server refuses any other tool or model with a 400.
 * @param {ServerComposer | null} [composer]
 * @returns {Pick<ComposerOption, "tools" | "models">}
 */
export function composerChoices(composer) {
  /** @type {NonNullable<ComposerOption["tools"]>} */
  const tools = (composer?.tools ?? []).map((tool) => ({ id: tool.id, label: tool.label, icon: tool.icon, placeholderOverride: tool.placeholder }));
  /** @type {NonNullable<ComposerOption["models"]>} */
  const models = (composer?.models ?? []).map((model) => ({ id: model.id, label: model.label, default: Boolean(model.default) }));
  return { ...(tools.length ? { tools } : {}), ...(models.length ? { models } : {}) };
}

/**
 * ChatKit's `commands` option (the composer's "/" menu): each of the server's composer tools as its
 * command (`/add`, `/find`, `/today`, `/summary`); choosing one selects that tool in the composer
 * (`selectTool`, which calls ChatKit's `setComposerValue({selectedToolId})`), as picking it from the
 * tool menu does, so the message then goes with the same `inference_options.tool_choice`. Null
 * when the server offers no tool with a command.
 * @param {ServerComposer | null | undefined} composer
 * @param {(toolId: string) => unknown} selectTool
 * @returns {CommandsOption | null}
 */
export function composerCommands(composer, selectTool) {
  const tools = (composer?.tools ?? []).filter((tool) => tool.command);
  if (!tools.length) return null;
  /** @type {Command[]} */
  const commands = tools.map((tool) => ({ id: tool.id, label: `/${tool.command}`, description: tool.label, icon: tool.icon }));
  return {
    enabled: true,
    onSearch: async (query) => {
      const words = String(query ?? "").trim().replace(/^\//, "").toLowerCase();
      return commands.filter((command) => command.label.slice(1).startsWith(words) || command.description?.toLowerCase().includes(words));
    },
    onSelect: async (command) => {
      // Only the server's own tools: anything else would be refused with a 400 when sent.
      if (commands.some((known) => known.id === command.id)) await selectTool(command.id);
    },
  };
}

/**
 * A message typed as a "/" command ("/add buy milk", "/today"): the composer tool it chooses and
 * the words after it; null when the text is no command of the server's tools (it is sent as typed).
 * @param {string} text
 * @param {ServerComposer | null | undefined} composer
 * @returns {{toolId: string, label: string, words: string} | null}
 */
export function typedCommand(text, composer) {
  const match = /^\/(\S+)(?:\s+([\s\S]*))?$/.exec(String(text ?? "").trim());
  if (!match) return null;
  const name = (match[1] ?? "").toLowerCase();
  const tool = (composer?.tools ?? []).find((candidate) => candidate.command === name);
  return tool ? { toolId: tool.id, label: tool.label, words: (match[2] ?? "").trim() } : null;
}

/**
 * What the server accepts as an attachment: `self_hosted.attachments` of GET /api/chatkit/health
 * (the OpenAPI schema `AttachmentOptions`: ATTACHMENT_MAX_BYTES, and each of ATTACHMENT_ALLOWED_TYPES
 * with the file name extensions that say it).
 * @typedef {{max_bytes: number, accept: Readonly<Record<string, ReadonlyArray<string>>>}} ServerAttachments
 */

/** Attachments one message may carry (ChatKit's own default is 10). */
export const MAX_ATTACHMENTS = 5;
/** ATTACHMENT_MAX_BYTES's default: the limit assumed when the health document did not say (an older server). */
export const DEFAULT_ATTACHMENT_MAX_BYTES = 10 * 1024 * 1024;

/**
 * ChatKit's `composer.attachments` from what the server accepts (`self_hosted.attachments` of
 * /api/chatkit/health): `maxSize` is ATTACHMENT_MAX_BYTES and `accept` the allowed types with their
 * extensions, so the file picker offers only files the server takes (it answers 413 / 415 to the
 * rest). Without that document: the server's default size and no `accept` (any file; the server judges).
 * @param {ServerAttachments | null} [attachments]
 * @returns {NonNullable<ComposerOption["attachments"]>}
 */
export function composerAttachments(attachments) {
  const maxSize = attachments?.max_bytes ?? DEFAULT_ATTACHMENT_MAX_BYTES;
  const accepted = Object.entries(attachments?.accept ?? {});
  /** @type {Record<string, string[]>} */
  const accept = Object.fromEntries(accepted.map(([mime, extensions]) => [mime, [...extensions]]));
  return { enabled: true, maxCount: MAX_ATTACHMENTS, maxSize, ...(accepted.length ? { accept } : {}) };
}

/**
 * The task ids a `tasks.changed` client effect names (ChatKit's `onEffect` / `chatkit.effect`
 * `data`, typed there as unknown values): its `ids` that are strings, or none.
 * @param {Record<string, unknown> | null | undefined} data
 * @returns {string[]}
 */
export function changedTaskIds(data) {
  const ids = data?.ids;
  return Array.isArray(ids) ? ids.filter((id) => typeof id === "string") : [];
}

// ---- the page's options (app.js): the look, the start screen, and each mode's api --------------

export const GREETING = "What needs doing? I can add, find, update and finish your tasks.";
/** @type {StartScreenPrompt[]} */
export const PROMPTS = [
  { label: "Add a task", prompt: "Add a task to buy milk tomorrow", icon: "plus" },
  { label: "What's open?", prompt: "Show my open tasks", icon: "check-circle" },
  { label: "Due soon", prompt: "What's due in the next 7 days?", icon: "calendar" },
  { label: "Overview", prompt: "Give me a summary of my tasks", icon: "chart" },
];
export const PLACEHOLDER = "Ask me to add, list, or finish tasks…";
/** @type {ThemeOption} */
export const THEME = {
  colorScheme: "light",
  radius: "round",
  density: "normal",
  color: {
    accent: { primary: "#e8590c", level: 1 },
    grayscale: { hue: 220, tint: 6, shade: -1 },
  },
  typography: { fontFamily: "Inter, system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif" },
};

/**
 * What both modes share: the look, the start screen and the thread history.
 * @returns {Pick<ChatKitOptions, "theme" | "startScreen" | "history" | "threadItemActions">}
 */
export function sharedOptions() {
  return {
    theme: THEME,
    startScreen: { greeting: GREETING, prompts: PROMPTS },
    history: { enabled: true, showDelete: true, showRename: true },
    threadItemActions: THREAD_ITEM_ACTIONS,
  };
}

/**
 * Self-hosted: ChatKit talks to TaskPilot's /chatkit at `base` through `api.fetch` (the page's,
 * which adds the bearer token and Time-Zone).
 * @param {{fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>}} api
 * @param {string | URL} base  TaskPilot's URL
 * @param {object} options
 * @param {string} options.domainKey  CHATKIT_DOMAIN_KEY, or the key ChatKit accepts on localhost
 * @param {boolean} [options.dictation]  health's `self_hosted.dictation`
 * @param {ServerComposer | null} [options.composer]  health's `self_hosted.composer`
 * @param {ServerAttachments | null} [options.attachments]  health's `self_hosted.attachments`
 * @param {EntitiesOption | null} [options.entities]  the user's tasks to tag in a message (entities.js)
 * @param {CommandsOption | null} [options.commands]  the composer's "/" commands (`composerCommands`)
 * @param {(() => void) | null} [options.onSyncAction]  after each synchronous widget action (refresh the task panel)
 * @returns {ChatKitOptions & {api: CustomApiConfig}}
 */
export function selfHostedOptions(api, base, { domainKey, dictation = false, composer = null, attachments = null, entities = null, commands = null, onSyncAction = null }) {
  return {
    ...sharedOptions(),
    onClientTool: answerClientTool,
    api: {
      url: new URL("/chatkit", base).toString(),
      domainKey,
      // Says this page answers get_time_zone (onClientTool above): only then may the server ask it.
      // A synchronous widget action (no stream, so no `tasks.changed` effect) calls onSyncAction.
      fetch: afterSyncActions((input, init) => api.fetch(input, withClientTools(input, init)), onSyncAction),
      // attachments.create answers with a signed upload URL on this server (PUT, no headers needed).
      uploadStrategy: { type: "two_phase" },
    },
    composer: {
      placeholder: PLACEHOLDER,
      // Only the types and sizes the server accepts (a file it would refuse is not offered).
      attachments: composerAttachments(attachments),
      // Only when /api/chatkit/health says TRANSCRIPTION_MODEL is set: otherwise input.transcribe is 501.
      dictation: { enabled: Boolean(dictation) },
      ...composerChoices(composer),
    },
    // Self-hosted only: the server resolves each tag to one of the user's tasks (a hosted workflow
    // runs on OpenAI's servers, which know nothing of them).
    ...(entities ? { entities } : {}),
    // `/add`, `/find`, `/today`, `/summary`: the composer tools above, chosen from the "/" menu.
    ...(commands ? { commands } : {}),
  };
}

/**
 * Hosted: ChatKit talks to OpenAI with secrets TaskPilot mints (hosted-session.js); a failure is
 * also handed to `onFailure`, to be shown in words.
 * @param {{getClientSecret(current: string | null): Promise<string>}} secrets
 * @param {(error: unknown) => void} onFailure
 * @returns {ChatKitOptions & {api: HostedApiConfig}}
 */
export function hostedOptions(secrets, onFailure) {
  return {
    ...sharedOptions(),
    api: {
      getClientSecret: async (current) => {
        try {
          return await secrets.getClientSecret(current);
        } catch (error) {
          onFailure(error);
          throw error;
        }
      },
    },
    composer: { placeholder: PLACEHOLDER },
  };
}
