// A STAND-IN for ChatKit's web component, for the browser tests only. The tests serve it in place
// of https://cdn.platform.openai.com/deployments/chatkit/chatkit.js, which a test machine cannot
// reach (the browser maps that host name to a local TLS server). In production the real web
// component is loaded from OpenAI's CDN; nothing in TaskPilot serves or ships this file.
//
// What it is: an <openai-chatkit> element that makes the calls the real one makes into *our*
// code, the way its documented API describes them:
// - `setOptions(options)` stores the options (tests read them from `window.__chatkit.options`);
// - hosted mode (`api.getClientSecret`): calls `getClientSecret(null)` once when it starts, and
//   `getClientSecret(current)` when a test says the secret expired (`expire()`);
// - self-hosted mode (`api.url` + `api.fetch`): `send(text)` posts a `threads.create` request
//   through `api.fetch`, reads the SSE answer, and dispatches `chatkit.thread.change` for a new
//   thread and `chatkit.effect` ({name, data}) for every `client_effect` event, as ChatKit does.
//
// - `setComposerValue(params)` and `focusComposer()` record their calls (`composerValues`,
//   `composerFocused`) without showing anything: the tests read what the page asked for.
//
// Options the page (or examples/react) passes for the component to call (`onClientTool`,
// `entities.onTagSearch`, `entities.onClick`, `entities.onRequestPreview`, `commands.onSearch` and
// `commands.onSelect`) are called by the tests themselves through `window.__chatkit.options`.
//
// What it does not prove: anything about the real component's UI (how it shows the tag search or
// renders tags, entity annotations, hover previews, the "/" menu or a value set in its composer,
// and whether its composer accepts a tag set that way), its iframe, its own calls to
// OpenAI in hosted mode, or exactly when and how often the real one calls getClientSecret. It
// never logs or renders a secret.

class StandInChatKit extends HTMLElement {
  constructor() {
    super();
    this.options = null;
    this.clientSecret = null;
    this.secretCalls = []; // {current, secret} or {current, error}
    this.started = false;
    this.annotations = []; // of the assistant messages `send` received
    this.composerValues = []; // each setComposerValue(params), in order
    this.composerFocused = 0;
  }

  /** ChatKit's `setComposerValue`: recorded, as the real one would fill its composer. */
  async setComposerValue(params) {
    this.composerValues.push(JSON.parse(JSON.stringify(params)));
  }

  async focusComposer() {
    this.composerFocused += 1;
  }

  setOptions(options) {
    this.options = options;
    window.__chatkit = this;
    this.render();
    if (typeof options?.api?.getClientSecret === "function" && !this.started) {
      this.started = true;
      this.requestSecret(null);
    }
  }

  get mode() {
    if (typeof this.options?.api?.getClientSecret === "function") return "hosted";
    return this.options?.api?.url ? "self-hosted" : "unconfigured";
  }

  /** What ChatKit does at start (`null`) and when its secret expires (the current secret). */
  async requestSecret(current) {
    const call = { current };
    this.secretCalls.push(call);
    this.pending = (async () => {
      try {
        const secret = await this.options.api.getClientSecret(current);
        if (typeof secret !== "string" || !secret) throw new Error("getClientSecret resolved without a string");
        call.secret = secret;
        this.clientSecret = secret;
      } catch (error) {
        call.error = String(error?.message ?? error);
      }
      this.render();
      return call;
    })();
    return this.pending;
  }

  /** ChatKit's secret expired: ask for a fresh one, naming the current one. */
  expire() {
    return this.requestSecret(this.clientSecret);
  }

  /** Self-hosted: one user message through `api.fetch`, and the events ChatKit would emit. The
   * message is text, or a list of content parts (`input_text`, and `input_tag` made from an entity
   * that `entities.onTagSearch` returned, as the composer sends a tagged task). */
  async send(text) {
    const { url, fetch: customFetch } = this.options.api;
    const content = Array.isArray(text) ? text : [{ type: "input_text", text }];
    const request = { type: "threads.create", params: { input: { content, attachments: [], inference_options: {} } } };
    const response = await (customFetch ?? fetch)(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(request) });
    const body = await response.text();
    const events = [];
    for (const line of body.split("\n")) {
      if (!line.startsWith("data: ")) continue;
      const event = JSON.parse(line.slice(6));
      events.push(event.type);
      if (event.type === "thread.item.done" && event.item?.type === "assistant_message") {
        this.annotations.push(...event.item.content.flatMap((part) => part.annotations ?? []));
      }
      if (event.type === "thread.created") {
        this.dispatchEvent(new CustomEvent("chatkit.thread.change", { detail: { threadId: event.thread.id } }));
      } else if (event.type === "client_effect") {
        this.dispatchEvent(new CustomEvent("chatkit.effect", { detail: { name: event.name, data: event.data } }));
      }
    }
    this.render();
    return { status: response.status, contentType: response.headers.get("content-type"), events };
  }

  render() {
    const last = this.secretCalls[this.secretCalls.length - 1];
    let state = `${this.mode} mode`;
    if (this.mode === "hosted") {
      state += last?.error ? `, getClientSecret failed: ${last.error}` : this.clientSecret ? ", client secret received" : ", waiting for a client secret";
      state += ` (${this.secretCalls.length} getClientSecret call${this.secretCalls.length === 1 ? "" : "s"})`;
    } else if (this.mode === "self-hosted") {
      state += `, api.url ${this.options.api.url}`;
    }
    const title = document.createElement("strong");
    title.textContent = "Stand-in for ChatKit's web component (browser tests only)";
    const line = document.createElement("p");
    line.textContent = state;
    this.replaceChildren(title, line);
  }
}

customElements.define("openai-chatkit", StandInChatKit);
