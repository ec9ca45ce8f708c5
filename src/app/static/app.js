// TaskPilot's page: a chat beside the user's task list.
//
// The chat is the official ChatKit web component (<openai-chatkit>, from OpenAI's CDN), in one of
// two modes (a switch in the top bar, or `?mode=self-hosted|hosted`):
// - self-hosted: pointed at this server's /chatkit with a `fetch` that adds the bearer token. When
//   ChatKit's script cannot load, the page falls back to a built-in console that speaks the same
//   protocol.
// - hosted: `api.getClientSecret` gets short-lived sessions of the server's Agent Builder workflow
//   from /api/chatkit/sessions (the rules are in hosted-session.js, shared with examples/react).
//   The conversation runs on OpenAI's servers, so without ChatKit's script there is no fallback.
//
// Embedding in another application (same markup, CSS and module; CORS_ORIGINS must list it):
//   import { mount } from "https://tasks.example.com/static/app.js";
//   mount(document.getElementById("taskpilot-app"), { getToken: async () => (await authClient.token()).data?.token });

import { Api, browserTimeZone, errorFromResponse } from "./api.js";
import { Auth } from "./auth.js";
import { answerClientTool, changedTaskIds, composerChoices, composerCommands, GREETING, hostedOptions, PLACEHOLDER, PROMPTS, selfHostedOptions, typedCommand } from "./chatkit-options.js";
import { ChatConsole } from "./console.js";
import { h } from "./dom.js";
import { askAboutTask, taskEntities } from "./entities.js";
import { createClientSecretProvider, describeClientSecretError } from "./hosted-session.js";
import { TaskPanel } from "./tasks.js";

// Shared with examples/react (chatkit-options.js); exported here too for pages that embed this module.
// The options themselves (the look, the start screen, each mode's api) are built in chatkit-options.js,
// where they are typed by @openai/chatkit's published types (typecheck/ checks them).
export { answerClientTool, composerChoices, GREETING, hostedOptions, PLACEHOLDER, PROMPTS, selfHostedOptions };
export { THEME } from "./chatkit-options.js";

export const CHATKIT_SCRIPT = "https://cdn.platform.openai.com/deployments/chatkit/chatkit.js";
// ChatKit checks this against the domains registered with OpenAI; localhost needs no registration.
export const LOCAL_DOMAIN_KEY = "domain_pk_localhost_dev";
const CHATKIT_WAIT_MS = 6000;

function params() {
  return new URLSearchParams(window.location.search);
}

export const MODES = ["self-hosted", "hosted"];

/** `?mode=`, else whichever mode the server has configured: self-hosted when both are. */
export function chooseMode(health, requested = params().get("mode")) {
  if (MODES.includes(requested)) return requested;
  const hosted = Boolean(health?.hosted?.ready);
  const selfHosted = health ? Boolean(health.self_hosted?.ready) : true;
  return hosted && !selfHosted ? "hosted" : "self-hosted";
}

/** Resolves true once <openai-chatkit> is defined, false if its script failed or took too long. */
export function chatKitAvailable(timeoutMs = CHATKIT_WAIT_MS) {
  if (customElements.get("openai-chatkit")) return Promise.resolve(true);
  if (window.taskpilotBoot?.chatkit === "failed") return Promise.resolve(false);
  if (!document.querySelector("script[data-chatkit]")) {
    // Embedded without the page's <head>: load ChatKit the same way, reporting failure.
    const script = h("script", { src: CHATKIT_SCRIPT, async: true, "data-chatkit": true });
    script.addEventListener("error", () => window.dispatchEvent(new Event("taskpilot:chatkit-failed")));
    document.head.append(script);
  }
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(Boolean(customElements.get("openai-chatkit"))), timeoutMs);
    customElements.whenDefined("openai-chatkit").then(() => {
      clearTimeout(timer);
      resolve(true);
    });
    window.addEventListener(
      "taskpilot:chatkit-failed",
      () => {
        clearTimeout(timer);
        resolve(false);
      },
      { once: true }
    );
  });
}

/** A token from the sign-in service's endpoint for the browser's session (Better Auth: GET /api/auth/token). */
function tokenFromUrl(url) {
  return async () => {
    const response = await fetch(url, { credentials: "include", headers: { Accept: "application/json" } });
    if (!response.ok) throw await errorFromResponse(response);
    const body = await response.json();
    return body.token ?? null;
  };
}

function detectAuth(health, options) {
  const tokenUrl = options.tokenUrl ?? document.querySelector('meta[name="taskpilot-token-url"]')?.content;
  const hostToken =
    options.getToken ??
    (typeof window.taskpilotToken === "function" ? () => window.taskpilotToken() : null) ??
    (tokenUrl ? tokenFromUrl(tokenUrl) : null);
  if (hostToken) return new Auth("host", { getToken: hostToken });
  return new Auth(health?.auth_mode === "dev" ? "dev" : "none");
}

export async function mount(root, options = {}) {
  const base = new URL(options.apiBase ?? new URL("/", import.meta.url));
  const auth0 = { token: async () => null, invalidate() {}, unauthorized() {} };
  // `?tz=ask` (or `sendTimeZone: false`): no Time-Zone header, as from a front end that cannot set
  // one; the assistant then asks for the zone with its client tool, which this page answers.
  const sendTimeZone = options.sendTimeZone ?? params().get("tz") !== "ask";
  const api = new Api(base, auth0, { timeZone: sendTimeZone ? browserTimeZone() : null });
  // Which modes the server has configured and how it authenticates (no secret values in it).
  const health = await api.publicJson("/api/chatkit/health").catch(() => null);
  const auth = detectAuth(health, options);
  api.auth = auth;
  auth.api = api;
  // Hosted sessions of this tab: kept in sessionStorage, tied to the signed-in user.
  const secrets = createClientSecretProvider({
    baseUrl: base,
    getToken: () => auth.token(),
    invalidateToken: (token) => auth.invalidate(token),
  });

  const account = h("div", { class: "tp-account" });
  const modeSwitch = h("div", { class: "tp-mode", role: "group", "aria-label": "ChatKit mode", hidden: true });
  const chatArea = h("main", { class: "tp-chat", "aria-label": "Assistant" });
  const tasks = new TaskPanel(api, { onAsk: (task) => askInChat(task) });
  // @-mentions in the composer: the user's tasks from GET /api/tasks?q=; a click focuses the task;
  // a hover previews it from GET /api/tasks/{id} (none for a task that is not the user's any more).
  const entities = taskEntities(
    (query) => api.json(`/api/tasks?${new URLSearchParams(query)}`),
    (id) => tasks.focus(id),
    (id) => api.json(`/api/tasks/${encodeURIComponent(id)}`).catch((error) => (error.status === 404 ? null : Promise.reject(error)))
  );
  const status = h("div", { class: "tp-status", role: "status", hidden: true });
  root.replaceChildren(
    h(
      "header",
      { class: "tp-topbar" },
      h("div", { class: "tp-brand" }, h("img", { src: new URL("/static/favicon.svg", base).toString(), alt: "", width: 28, height: 28 }), h("span", {}, "TaskPilot")),
      h("span", { class: "tp-tagline" }, "Your tasks, by conversation"),
      modeSwitch,
      account
    ),
    status,
    h("div", { class: "tp-body" }, chatArea, tasks.element)
  );

  // `?ui=console` is the built-in console, which speaks the self-hosted protocol only.
  const initialMode = MODES.includes(options.mode) ? options.mode : params().get("ui") === "console" ? "self-hosted" : chooseMode(health);
  const state = { chat: null, mode: initialMode, run: 0 };

  const showStatus = (message, level = "info") => {
    status.hidden = !message;
    status.className = `tp-status tp-status--${level}`;
    status.textContent = message ?? "";
  };

  const renderModeSwitch = () => {
    // Offered when the server can mint hosted sessions, or when hosted mode was asked for.
    modeSwitch.hidden = !(health?.hosted?.ready || state.mode === "hosted");
    modeSwitch.replaceChildren(
      ...MODES.map((mode) =>
        h(
          "button",
          {
            type: "button",
            class: "tp-mode-btn",
            dataset: { mode },
            "aria-pressed": String(mode === state.mode),
            title: mode === "hosted" ? "OpenAI runs the Agent Builder workflow; TaskPilot mints the sessions" : "TaskPilot answers ChatKit at /chatkit",
            onClick: () => setMode(mode),
          },
          mode === "hosted" ? "Hosted" : "Self-hosted"
        )
      )
    );
  };

  const renderAccount = () => {
    account.replaceChildren();
    if (auth.mode === "dev" && auth.user) {
      account.append(
        h("span", { class: "tp-user", title: "Development sign-in (AUTH_MODE=dev)" }, h("span", { class: "tp-avatar", "aria-hidden": "true" }, auth.user.slice(0, 1).toUpperCase()), auth.user),
        h(
          "button",
          {
            type: "button",
            class: "tp-btn tp-btn--ghost tp-btn--sm",
            // The hosted session this tab holds is this user's: cancel it while the token still works.
            onClick: async () => {
              await secrets.release();
              auth.signOut();
            },
          },
          "Switch user"
        )
      );
    } else if (auth.mode === "host" && auth.user) {
      account.append(h("span", { class: "tp-user" }, h("span", { class: "tp-avatar", "aria-hidden": "true" }, auth.user.slice(0, 1).toUpperCase()), auth.user));
    }
  };

  const showSignIn = (problem = null) => {
    secrets.clear(); // signed out: the tab keeps no hosted secret
    tasks.clear("Sign in to see your tasks.");
    if (auth.mode === "dev") {
      const field = h("input", { id: "tp-user-name", class: "tp-field", name: "user", autocomplete: "username", required: true, maxlength: 64, pattern: "[A-Za-z0-9][A-Za-z0-9._@\\-]*", placeholder: "e.g. alice" });
      const error = h("p", { class: "tp-form-error", hidden: true, role: "alert" });
      const form = h(
        "form",
        {
          class: "tp-signin",
          onSubmit: async (event) => {
            event.preventDefault();
            const name = field.value.trim();
            if (!name) return;
            try {
              await auth.signIn(name);
            } catch (failure) {
              error.hidden = false;
              error.textContent = failure.message;
            }
          },
        },
        h("h1", {}, "Sign in for development"),
        h("p", { class: "tp-muted" }, "This server runs with AUTH_MODE=dev: type any user name to get a development token. Each name has its own tasks and conversations."),
        h("label", { for: "tp-user-name" }, "User name"),
        h("div", { class: "tp-signin-row" }, field, h("button", { type: "submit", class: "tp-btn tp-btn--solid" }, "Continue")),
        error
      );
      chatArea.replaceChildren(h("div", { class: "tp-center" }, form));
      field.focus();
    } else {
      chatArea.replaceChildren(
        h(
          "div",
          { class: "tp-center" },
          h(
            "div",
            { class: "tp-signin" },
            h("h1", {}, "Sign in through your application"),
            h("p", { class: "tp-muted" }, "This server accepts JWTs from your sign-in service (AUTH_MODE=jwt). Open TaskPilot from the application that signs you in: it supplies tokens through AUTH_TOKEN_URL or window.taskpilotToken (see docs/front-ends.md)."),
            problem ? h("p", { class: "tp-form-error", role: "alert" }, problem) : null
          )
        )
      );
    }
  };

  const start = async () => {
    renderAccount();
    renderModeSwitch();
    if (!auth.signedIn) {
      showSignIn();
      return;
    }
    if (auth.mode === "host") {
      let token = null;
      let failure = null;
      try {
        token = await auth.token();
      } catch (error) {
        failure = error;
      }
      if (!token) {
        showSignIn(failure ? `The sign-in service gave no token: ${failure.message}` : "The sign-in service gave no token: sign in to your application first.");
        return;
      }
      renderAccount();
    }
    tasks.refresh();
    await startChat();
  };

  // The task panel's "Ask about this task": ChatKit's composer gets the task tagged
  // (`setComposerValue`; in hosted mode its number and title, which OpenAI's workflow can read),
  // the console's likewise.
  const askInChat = (task) => {
    const chat = state.chat;
    if (!chat) return;
    if (typeof chat.setComposerValue === "function") {
      chat.setComposerValue(askAboutTask(task, { tagged: state.mode === "self-hosted" })).then(() => chat.focusComposer?.());
    } else {
      chat.prefill?.(task);
    }
  };

  const onEffect = (name, data) => {
    if (name === "tasks.changed") tasks.refresh(changedTaskIds(data));
  };
  // A synchronous widget action (Done, Reopen, an edit) answers without a stream, so without the
  // `tasks.changed` effect: the panel reloads on its answer instead.
  const onSyncAction = () => tasks.refresh();

  /** (Re)start the chat in `state.mode`. A later start (a mode switch) supersedes this one. */
  const startChat = async () => {
    const run = ++state.run;
    const current = () => run === state.run;
    state.chat?.busy?.abort?.(); // a console stream still running in the mode being left
    state.chat = null;
    showStatus(null);
    renderModeSwitch();
    root.dataset.mode = state.mode;
    const forced = params().get("ui");
    if (state.mode === "hosted") {
      await startHosted(current, forced);
    } else {
      const useChatKit = forced !== "console" && (await chatKitAvailable(forced === "chatkit" ? 30_000 : CHATKIT_WAIT_MS));
      if (!current()) return;
      if (useChatKit) {
        const dictation = options.dictation ?? Boolean(health?.self_hosted?.dictation);
        const composer = options.composer ?? health?.self_hosted?.composer;
        const attachments = options.attachments ?? health?.self_hosted?.attachments;
        // "/add", "/today", ...: choosing one selects that composer tool in ChatKit's composer.
        const commands = composerCommands(composer, (toolId) => state.chat?.setComposerValue?.({ selectedToolId: toolId }));
        state.chat = mountChatKit(chatArea, selfHostedOptions(api, base, { domainKey: pageDomainKey(options), dictation, composer, attachments, entities, commands, onSyncAction }), {
          threadKey: `taskpilot.chatkit-thread:${auth.user ?? "anonymous"}`,
          onEffect,
          onError: (message) => showStatus(`ChatKit: ${message}. Reload, or open ${window.location.pathname}?ui=console for the built-in console.`, "error"),
        });
        root.dataset.ui = "chatkit";
      } else {
        const reason = forced === "console" ? "Chosen with ?ui=console." : "ChatKit's script could not be loaded from its CDN, so this page uses its built-in console.";
        const offered = options.composer ?? health?.self_hosted?.composer;
        const composer = composerChoices(offered);
        const commandOf = (text) => typedCommand(text, offered);
        const chat = new ChatConsole(api, { greeting: GREETING, prompts: PROMPTS, placeholder: PLACEHOLDER, user: auth.user, reason, onEffect, onSyncAction, onClientTool: answerClientTool, composer, entities, commandOf });
        chatArea.replaceChildren(chat.element);
        state.chat = chat;
        root.dataset.ui = "console";
        await chat.start();
      }
    }
    if (current()) root.dataset.ready = "true";
  };

  const notice = (title, text, ...actions) =>
    h(
      "div",
      { class: "tp-center" },
      h("div", { class: "tp-notice", role: "alert" }, h("h1", {}, title), h("p", { class: "tp-notice-text" }, text), h("div", { class: "tp-notice-actions" }, actions))
    );

  const selfHostedButton = (label) =>
    h("button", { type: "button", class: "tp-btn tp-btn--outline", dataset: { action: "self-hosted" }, onClick: () => setMode("self-hosted") }, label);

  const startHosted = async (current, forced) => {
    chatArea.replaceChildren(h("div", { class: "tp-center" }, h("p", { class: "tp-muted", role: "status" }, "Starting hosted ChatKit…")));
    // When the server says hosted mode is not configured, ask it anyway (below) without waiting
    // for the CDN: its answer names the variables to set.
    if (health?.hosted?.ready !== false) {
      const available = await chatKitAvailable(forced === "chatkit" ? 30_000 : CHATKIT_WAIT_MS);
      if (!current()) return;
      if (!available) {
        chatArea.replaceChildren(
          notice(
            "Hosted mode needs ChatKit's script",
            `ChatKit's web component could not be loaded from OpenAI's CDN (${new URL(CHATKIT_SCRIPT).origin}). In hosted mode the conversation runs on OpenAI's servers, so this page cannot offer it without that script. The self-hosted console works without it: TaskPilot answers every message itself.`,
            selfHostedButton("Use the self-hosted console")
          )
        );
        root.dataset.ui = "hosted-unavailable";
        return;
      }
    }
    // The first secret is fetched before ChatKit is shown, so a failure reads as words rather than
    // as a blank widget; ChatKit's own first call then reuses it.
    try {
      await secrets.getClientSecret(null);
    } catch (error) {
      if (current()) showHostedError(error, current, forced);
      return;
    }
    if (!current()) return;
    state.chat = mountChatKit(chatArea, hostedOptions(secrets, (error) => showStatus(describeClientSecretError(error), "error")), {
      threadKey: `taskpilot.chatkit-thread:hosted:${auth.user ?? "anonymous"}`,
      onEffect,
      onError: (message) => showStatus(`ChatKit: ${message}. Reload, or switch to self-hosted mode.`, "error"),
    });
    root.dataset.ui = "chatkit";
  };

  const showHostedError = (error, current, forced) => {
    const retry = h("button", { type: "button", class: "tp-btn tp-btn--solid", dataset: { action: "retry" } }, "Retry");
    const panel = notice("Hosted ChatKit could not start", describeClientSecretError(error), retry, selfHostedButton("Use self-hosted mode"));
    chatArea.replaceChildren(panel);
    root.dataset.ui = "hosted-error";
    // The server's Retry-After is honoured: the button counts down, then asks again when pressed.
    let wait = typeof error.retryAfter === "number" ? error.retryAfter : 0;
    const tick = () => {
      if (!panel.isConnected) return;
      retry.disabled = wait > 0;
      retry.textContent = wait > 0 ? `Retry in ${wait} s` : "Retry";
      if (wait > 0) {
        wait -= 1;
        setTimeout(tick, 1000);
      }
    };
    tick();
    retry.addEventListener("click", async () => {
      if (!current() || retry.disabled) return;
      retry.disabled = true;
      root.dataset.ready = "false";
      await startHosted(current, forced);
      if (current()) root.dataset.ready = "true";
    });
  };

  const setMode = (mode) => {
    if (!MODES.includes(mode) || mode === state.mode) return;
    state.mode = mode;
    const search = params();
    search.set("mode", mode);
    if (mode === "hosted") search.delete("ui"); // the console speaks the self-hosted protocol only
    window.history.replaceState(null, "", `${window.location.pathname}?${search}${window.location.hash}`);
    renderModeSwitch();
    if (!auth.signedIn) return;
    root.dataset.ready = "false";
    startChat();
  };

  auth.addEventListener("change", () => {
    root.dataset.ready = "false";
    start();
  });
  auth.addEventListener("token", renderAccount);
  auth.addEventListener("unauthorized", (event) => {
    showStatus(`${event.detail.message}${auth.mode === "dev" ? " Use “Switch user” to sign in again." : ""}`, "error");
  });

  const handle = {
    api,
    auth,
    tasks,
    secrets,
    setMode,
    get mode() {
      return state.mode;
    },
    get chat() {
      return state.chat;
    },
  };
  root.taskpilot = handle; // for the browser console and tests
  await start();
  return handle;
}

/** CHATKIT_DOMAIN_KEY (filled into the page by the server), or the key ChatKit accepts on localhost. */
function pageDomainKey(options) {
  return options.domainKey || document.querySelector('meta[name="chatkit-domain-key"]')?.content || LOCAL_DOMAIN_KEY;
}

function mountChatKit(chatArea, chatOptions, { threadKey, onEffect, onError }) {
  let initialThread = null;
  try {
    initialThread = window.localStorage.getItem(threadKey);
  } catch {
    initialThread = null;
  }
  const element = document.createElement("openai-chatkit");
  element.classList.add("tp-chatkit");
  chatArea.replaceChildren(element);
  element.setOptions({ ...chatOptions, initialThread });
  element.addEventListener("chatkit.thread.change", (event) => {
    try {
      if (event.detail?.threadId) window.localStorage.setItem(threadKey, event.detail.threadId);
      else window.localStorage.removeItem(threadKey);
    } catch {
      // private mode: ChatKit still works, it just starts on a new thread next time
    }
  });
  element.addEventListener("chatkit.effect", (event) => onEffect(event.detail.name, event.detail.data ?? {}));
  element.addEventListener("chatkit.error", (event) => onError(event.detail?.error?.message ?? "something went wrong"));
  return element;
}

const root = document.getElementById("taskpilot-app");
if (root?.hasAttribute("data-autostart")) {
  mount(root).catch((error) => {
    root.replaceChildren(h("p", { class: "tp-fatal", role: "alert" }, `TaskPilot could not start: ${error.message}`));
  });
}
