// The built-in chat console: what the page shows when ChatKit's script cannot load (offline
// networks, blocked CDNs). It speaks the same /chatkit protocol as the ChatKit web component:
// thread list, new thread, send, streamed assistant text, tool progress, the task widget's
// buttons as actions, feedback on answers, retry after an error, client tools (the server's
// `get_time_zone`), @-tagging tasks (a picker, tag-picker.js) with tagged tasks and the tasks a
// reply names linked to the task panel (ChatKit's `entities` option), the composer's tools typed as
// "/" commands (`/add buy milk`, `/today`, `/summary`), a closed or locked conversation's status
// (its input disabled, as ChatKit's component does), and readable errors.

import { h, richText, formatWhen, directionOf, isolated } from "./dom.js";
import { entitySources, entityTaskId, taskEntity } from "./entities.js";
import { ChatKitConnection, userInput } from "./protocol.js";
import { TagPicker } from "./tag-picker.js";
import { renderWidget, updateComponent } from "./widgets.js";

/** The words of a widget tree, in order: what its direction is read from. */
function widgetText(node) {
  if (node == null || typeof node !== "object") return "";
  if (Array.isArray(node)) return node.map(widgetText).join(" ");
  const own = [node.status?.text, node.value, node.label, node.text].filter((value) => typeof value === "string");
  return [...own, widgetText(node.children)].join(" ");
}

const HIDDEN_ITEMS = new Set(["end_of_turn", "hidden_context_item", "sdk_hidden_context", "client_tool_call"]);
const HISTORY_PAGE = 50;
// Composer tools a bare "/" command cannot run without words (there is nothing to add yet): the
// command chooses the tool and waits for them, as ChatKit's "/" menu does. The others run at once.
const NEEDS_WORDS = new Set(["add_task"]);
const THREAD_PAGE = 30;

export class ChatConsole {
  /**
   * @param {import("./api.js").Api} api
   * @param {{greeting: string, prompts: {label: string, prompt: string}[], placeholder: string,
   *          user: string|null, reason: string, onEffect(name: string, data: object): void,
   *          onSyncAction?(): void, onClientTool({name: string, params: object}): object,
   *          entities?: {onTagSearch(query: string): Promise<object[]>, onClick(entity: object): void},
   *          commandOf?(text: string): {toolId: string, label: string, words: string} | null}} options
   *          onClientTool and entities work as ChatKit's options of those names do; commandOf reads
   *          a typed "/" command (chatkit-options.js `typedCommand`); onSyncAction runs after each
   *          synchronous widget action (it has no stream, so no tasks.changed effect)
   */
  constructor(api, options) {
    this.api = api;
    this.chatkit = new ChatKitConnection(api);
    this.options = options;
    this.threads = [];
    this.threadsAfter = null;
    this.threadId = null;
    this.items = new Map(); // id -> { item, el }
    this.busy = null; // AbortController of the running stream
    this.olderAfter = null;
    this.storageKey = `taskpilot.thread:${options.user ?? "anonymous"}`;
    this.#build();
  }

  #build() {
    this.threadList = h("ul", { class: "tp-thread-list", "aria-label": "Conversations" });
    this.moreThreads = h("button", { type: "button", class: "tp-link-btn", hidden: true, onClick: () => this.loadThreads({ more: true }) }, "Show older conversations");
    this.title = h("h2", { class: "tp-conv-title", dir: "auto" }, "New conversation");
    this.log = h("div", { class: "tp-log", role: "log", "aria-live": "polite", "aria-relevant": "additions text" });
    this.progress = h("div", { class: "tp-progress", hidden: true, role: "status", dir: "auto" });
    this.banner = h("div", { class: "tp-banner", hidden: true, role: "alert" });
    // A closed or locked conversation (ChatKit's `thread.status`): why, instead of the composer.
    this.threadStatus = h("div", { class: "tp-thread-status", hidden: true, role: "status", dir: "auto" });
    this.closed = false;
    this.input = h("textarea", {
      class: "tp-input",
      rows: 1,
      dir: "auto",
      placeholder: this.options.placeholder,
      "aria-label": "Message",
      onKeydown: (event) => {
        if (this.picker?.handleKey(event)) return;
        if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
          event.preventDefault();
          this.form.requestSubmit();
        }
      },
      onInput: () => this.#autosize(),
    });
    this.#buildChoices();
    this.picker = this.options.entities ? new TagPicker(this.input, this.options.entities.onTagSearch) : null;
    this.sendButton = h("button", { type: "submit", class: "tp-btn tp-btn--solid tp-send" }, "Send");
    this.stopButton = h("button", { type: "button", class: "tp-btn tp-btn--outline", hidden: true, onClick: () => this.busy?.abort() }, "Stop");
    this.form = h(
      "form",
      {
        class: "tp-composer",
        onSubmit: (event) => {
          event.preventDefault();
          this.send(this.input.value);
        },
      },
      this.toolSelect,
      this.modelSelect,
      this.input,
      this.stopButton,
      this.sendButton
    );
    this.element = h(
      "section",
      { class: "tp-console", "aria-label": "Chat" },
      h(
        "nav",
        { class: "tp-threads", "aria-label": "Conversations" },
        h("button", { type: "button", class: "tp-btn tp-btn--soft tp-new-thread", onClick: () => this.newThread() }, "+ New chat"),
        this.threadList,
        this.moreThreads
      ),
      h(
        "div",
        { class: "tp-conversation" },
        h("header", { class: "tp-conv-header" }, this.title, h("span", { class: "tp-mode-note", title: this.options.reason }, "Built-in console")),
        this.log,
        this.progress,
        this.banner,
        this.threadStatus,
        this.picker?.element,
        this.form
      )
    );
  }

  /** The composer's tool and model pickers, as ChatKit's `composer.tools` / `composer.models` (null when none are offered). */
  #buildChoices() {
    const { tools = [], models = [] } = this.options.composer ?? {};
    this.toolSelect = tools.length
      ? h(
          "select",
          {
            class: "tp-choice tp-choice--tool",
            "aria-label": "Tool",
            onChange: () => {
              const tool = tools.find((t) => t.id === this.toolSelect.value);
              this.input.placeholder = tool?.placeholderOverride ?? this.options.placeholder;
            },
          },
          h("option", { value: "" }, "No tool"),
          tools.map((tool) => h("option", { value: tool.id }, tool.label))
        )
      : null;
    this.modelSelect = models.length
      ? h(
          "select",
          { class: "tp-choice tp-choice--model", "aria-label": "Model" },
          models.map((model) => h("option", { value: model.id, selected: model.default || null }, model.label))
        )
      : null;
  }

  /** The composer's choices for the next message (ChatKit's `inference_options`); the tool applies to one message. */
  #inferenceOptions() {
    const options = {};
    if (this.toolSelect?.value) options.tool_choice = { id: this.toolSelect.value };
    if (this.modelSelect?.value) options.model = this.modelSelect.value;
    return options;
  }

  #chooseTool(toolId) {
    this.toolSelect.value = toolId;
    this.toolSelect.dispatchEvent(new Event("change"));
  }

  /** "Ask about this task" (the task panel): the composer starts with the task tagged, as if
   * chosen from the @ picker, ready for the question. */
  prefill(task) {
    if (this.closed) this.newThread();
    this.input.value = this.picker ? `@${task.title} ` : `About task #${task.number} ${task.title}: `;
    const entity = taskEntity(task);
    this.picker?.restore([{ id: entity.id, text: entity.title, data: entity.data ?? {} }]);
    this.#autosize();
    this.input.focus();
    this.input.setSelectionRange(this.input.value.length, this.input.value.length);
  }

  #resetTool() {
    if (!this.toolSelect) return;
    this.toolSelect.value = "";
    this.input.placeholder = this.options.placeholder;
  }

  async start() {
    await this.loadThreads();
    let stored = null;
    try {
      stored = window.localStorage.getItem(this.storageKey);
    } catch {
      stored = null;
    }
    if (stored) {
      await this.openThread(stored, { quiet: true });
    } else {
      this.newThread();
    }
  }

  // ---- threads ---------------------------------------------------------------------------

  async loadThreads({ more = false } = {}) {
    try {
      const params = { limit: THREAD_PAGE, order: "desc" };
      if (more && this.threadsAfter) params.after = this.threadsAfter;
      const page = await this.chatkit.request("threads.list", params);
      this.threads = more ? [...this.threads, ...page.data] : page.data;
      this.threadsAfter = page.has_more ? page.after ?? page.data.at(-1)?.id : null;
      this.moreThreads.hidden = !page.has_more;
      this.#renderThreads();
    } catch (error) {
      this.showError(`Could not list conversations. ${error.message}`);
    }
  }

  #renderThreads() {
    this.threadList.replaceChildren(
      ...this.threads.map((thread) =>
        h(
          "li",
          {},
          h(
            "button",
            {
              type: "button",
              class: ["tp-thread", thread.id === this.threadId ? "tp-thread--active" : null],
              "aria-current": thread.id === this.threadId ? "true" : null,
              dataset: { threadId: thread.id },
              onClick: () => this.openThread(thread.id),
            },
            h("span", { class: "tp-thread-title", dir: "auto" }, thread.title || "New conversation"),
            h("span", { class: "tp-thread-when" }, formatWhen(thread.created_at))
          )
        )
      )
    );
  }

  #upsertThread(thread) {
    const index = this.threads.findIndex((t) => t.id === thread.id);
    const meta = { id: thread.id, title: thread.title, created_at: thread.created_at, status: thread.status };
    if (index === -1) this.threads.unshift(meta);
    else this.threads[index] = { ...this.threads[index], ...meta };
    if (thread.id === this.threadId) {
      this.title.textContent = thread.title || "New conversation";
      this.#showStatus(thread.status);
    }
    this.#renderThreads();
  }

  /** A conversation the server closed (`QUOTA_ITEMS_PER_THREAD`) or locked takes no message: its
   * reason is shown and the composer is disabled; an active one (or a new chat) takes them again. */
  #showStatus(status) {
    const type = status?.type ?? "active";
    this.closed = type === "closed" || type === "locked";
    this.threadStatus.hidden = !this.closed;
    this.threadStatus.dataset.status = type;
    const said = type === "locked" ? "This conversation is locked." : "This conversation is closed.";
    this.threadStatus.replaceChildren(h("strong", {}, said), " ", ...isolated(status?.reason ?? ""), " ", h("button", { type: "button", class: "tp-link-btn", onClick: () => this.newThread() }, "Start a new chat"));
    this.element.classList.toggle("tp-console--closed", this.closed);
    for (const control of [this.input, this.sendButton, this.toolSelect, this.modelSelect]) if (control) control.disabled = this.closed;
  }

  #remember(threadId) {
    try {
      if (threadId) window.localStorage.setItem(this.storageKey, threadId);
      else window.localStorage.removeItem(this.storageKey);
    } catch {
      // private mode: history still works within the page
    }
  }

  newThread() {
    if (this.busy) return;
    this.threadId = null;
    this.items.clear();
    this.olderAfter = null;
    this.#remember(null);
    this.title.textContent = "New conversation";
    this.#showStatus(null);
    this.clearBanner();
    this.log.replaceChildren(this.#startScreen());
    this.#renderThreads();
    this.input.focus();
  }

  #startScreen() {
    return h(
      "div",
      { class: "tp-start" },
      h("p", { class: "tp-greeting" }, this.options.greeting),
      h(
        "div",
        { class: "tp-prompts" },
        this.options.prompts.map((p) => h("button", { type: "button", class: "tp-prompt", onClick: () => this.send(p.prompt) }, p.label))
      )
    );
  }

  async openThread(threadId, { quiet = false } = {}) {
    if (this.busy) return;
    this.clearBanner();
    try {
      const [thread, page] = await Promise.all([
        this.chatkit.request("threads.get_by_id", { thread_id: threadId }),
        this.chatkit.request("items.list", { thread_id: threadId, limit: HISTORY_PAGE, order: "desc" }),
      ]);
      this.threadId = thread.id;
      this.#remember(thread.id);
      this.items.clear();
      this.log.replaceChildren();
      this.title.textContent = thread.title || "New conversation";
      this.#showStatus(thread.status);
      this.olderAfter = page.has_more ? page.after ?? page.data.at(-1)?.id : null;
      if (this.olderAfter) this.log.append(this.#olderButton());
      for (const item of [...page.data].reverse()) this.renderItem(item);
      if (!this.threads.some((t) => t.id === thread.id)) this.#upsertThread(thread);
      this.#renderThreads();
      this.#scroll(true);
    } catch (error) {
      if (quiet && error.status === 404) {
        this.newThread();
        return;
      }
      this.showError(`Could not open the conversation. ${error.message}`);
    }
  }

  #olderButton() {
    return h("button", { type: "button", class: "tp-link-btn tp-older", onClick: (e) => this.#loadOlder(e.currentTarget) }, "Show earlier messages");
  }

  async #loadOlder(button) {
    button.disabled = true;
    try {
      const page = await this.chatkit.request("items.list", { thread_id: this.threadId, limit: HISTORY_PAGE, order: "desc", after: this.olderAfter });
      this.olderAfter = page.has_more ? page.after ?? page.data.at(-1)?.id : null;
      let anchor = button.nextSibling;
      for (const item of page.data) {
        // Newest first: each older item goes above the previous one.
        const el = this.#itemElement(item);
        if (!el) continue;
        this.items.set(item.id, { item, el });
        this.log.insertBefore(el, anchor);
        anchor = el;
      }
      if (this.olderAfter) button.disabled = false;
      else button.remove();
    } catch (error) {
      button.disabled = false;
      this.showError(`Could not load earlier messages. ${error.message}`);
    }
  }

  // ---- sending -----------------------------------------------------------------------------

  async send(text) {
    text = String(text ?? "").trim();
    if (!text || this.busy || this.closed) return;
    const typed = text;
    const command = this.options.commandOf?.(text) ?? null;
    if (command && this.toolSelect) {
      // "/add buy milk": the Add task tool with "buy milk", as if chosen in the tool select.
      this.#chooseTool(command.toolId);
      if (!command.words && NEEDS_WORDS.has(command.toolId)) {
        this.input.value = "";
        this.#autosize();
        this.input.focus();
        return;
      }
      // A bare "/today" or "/summary" says what it asks in the tool's own words.
      text = command.words || command.label;
    }
    this.input.value = "";
    this.#autosize();
    const tool = this.toolSelect?.value ?? "";
    const tags = this.picker?.take() ?? [];
    const input = userInput(text, { tags, inferenceOptions: this.#inferenceOptions() });
    this.#resetTool();
    let refused;
    if (this.threadId) {
      refused = await this.#run("threads.add_user_message", { thread_id: this.threadId, input });
    } else {
      this.log.replaceChildren();
      refused = await this.#run("threads.create", { input });
    }
    // Refused before any stream opened (a 429, a 503 while restarting, a 4xx): nothing was saved,
    // so the text goes back into the composer instead of being lost.
    if (refused?.status && !this.input.value) {
      this.input.value = typed;
      this.picker?.restore(tags);
      this.#autosize();
      if (this.toolSelect) {
        this.toolSelect.value = tool;
        this.toolSelect.dispatchEvent(new Event("change"));
      }
    }
  }

  async #action(action, sender, control) {
    if (this.busy || !this.threadId) return;
    if (action.handler === "client") return; // no client-side actions on this page
    const params = { thread_id: this.threadId, item_id: sender?.id ?? null, action: { type: action.type, payload: action.payload ?? null } };
    control?.classList.add("tp-btn--loading");
    if (action.streaming === false) {
      try {
        const answer = await this.chatkit.request("threads.sync_custom_action", params);
        if (answer?.updated_item) this.renderItem(answer.updated_item);
        this.options.onSyncAction?.();
      } catch (error) {
        this.showError(error.message);
      } finally {
        control?.classList.remove("tp-btn--loading");
      }
      return;
    }
    await this.#run("threads.custom_action", params);
    control?.classList.remove("tp-btn--loading");
  }

  async #retry() {
    if (this.busy || !this.threadId) return;
    const users = [...this.log.querySelectorAll('[data-item-type="user_message"]')];
    const lastUser = users.at(-1);
    if (!lastUser) return;
    // The server drops everything after that message and answers it again; so does the log.
    while (lastUser.nextElementSibling) {
      const el = lastUser.nextElementSibling;
      this.items.delete(el.dataset.itemId);
      el.remove();
    }
    await this.#run("threads.retry_after_item", { thread_id: this.threadId, item_id: lastUser.dataset.itemId });
  }

  async #run(type, params) {
    this.clearBanner();
    this.busy = new AbortController();
    this.element.classList.add("tp-console--busy");
    this.sendButton.disabled = true;
    this.stopButton.hidden = false;
    this.#showProgress("Thinking…");
    let failure = null;
    try {
      this.pendingClientTool = null;
      await this.chatkit.stream(type, params, (event) => this.handleEvent(event), { signal: this.busy.signal });
      // The turn stopped at a client tool (the server asks the page something, e.g. its time
      // zone): answer it, and the server resumes the same turn.
      while (this.pendingClientTool && !this.busy.signal.aborted) {
        const call = this.pendingClientTool;
        this.pendingClientTool = null;
        let result;
        try {
          result = await this.options.onClientTool({ name: call.name, params: call.arguments ?? {} });
        } catch (error) {
          result = { error: String(error?.message ?? error) };
        }
        await this.chatkit.stream("threads.add_client_tool_output", { thread_id: this.threadId, result }, (event) => this.handleEvent(event), { signal: this.busy.signal });
      }
    } catch (error) {
      failure = error;
      if (error?.name === "AbortError") {
        this.showNotice({ level: "info", message: "Stopped. The partial answer is kept." });
      } else if (error?.retryAfter) {
        this.showError(`${error.message} Try again in ${error.retryAfter} s.`);
      } else {
        this.showError(error.message);
      }
    } finally {
      this.busy = null;
      this.element.classList.remove("tp-console--busy");
      this.sendButton.disabled = this.closed;
      this.stopButton.hidden = true;
      this.#hideProgress();
      for (const { item, el } of this.items.values()) {
        if (item.type === "assistant_message") el.classList.remove("tp-msg--streaming");
      }
      this.input.focus();
    }
    return failure;
  }

  // ---- events ------------------------------------------------------------------------------

  handleEvent(event) {
    switch (event.type) {
      case "thread.created":
        this.threadId = event.thread.id;
        this.#remember(event.thread.id);
        this.#upsertThread(event.thread);
        break;
      case "thread.updated":
        this.#upsertThread(event.thread);
        break;
      case "thread.item.added":
        this.renderItem(event.item, { streaming: true });
        if (event.item.type === "assistant_message") this.#hideProgress();
        break;
      case "thread.item.updated":
        this.#applyUpdate(event.item_id, event.update);
        break;
      case "thread.item.done":
      case "thread.item.replaced":
        if (event.item.type === "client_tool_call" && event.item.status === "pending") this.pendingClientTool = event.item;
        this.renderItem(event.item);
        break;
      case "thread.item.removed":
        this.items.get(event.item_id)?.el.remove();
        this.items.delete(event.item_id);
        break;
      case "progress_update":
        this.#showProgress(event.text);
        break;
      case "client_effect":
        this.options.onEffect(event.name, event.data ?? {});
        break;
      case "error":
        this.showError(event.message || "The assistant could not answer. Try again.", { retry: event.allow_retry });
        break;
      case "notice":
        this.showNotice(event);
        break;
      case "stream_options":
        this.stopButton.hidden = !event.stream_options?.allow_cancel;
        break;
      default:
        break;
    }
  }

  #applyUpdate(itemId, update) {
    const entry = this.items.get(itemId);
    if (!entry) return;
    const item = entry.item;
    switch (update.type) {
      case "assistant_message.content_part.added":
      case "assistant_message.content_part.done":
        item.content[update.content_index] = update.content;
        break;
      case "assistant_message.content_part.text_delta": {
        const part = (item.content[update.content_index] ??= { type: "output_text", text: "", annotations: [] });
        part.text += update.delta;
        break;
      }
      case "workflow.task.added":
      case "workflow.task.updated":
        item.workflow.tasks[update.task_index] = update.task;
        break;
      case "widget.root.updated":
        item.widget = update.widget;
        break;
      case "widget.component.updated":
        updateComponent(item.widget, update.component_id, (node) => Object.assign(node, update.component));
        break;
      case "widget.streaming_text.value_delta":
        updateComponent(item.widget, update.component_id, (node) => {
          node.value = (node.value ?? "") + update.delta;
        });
        break;
      default:
        return;
    }
    this.renderItem(item, { streaming: true });
  }

  // ---- rendering ---------------------------------------------------------------------------

  renderItem(item, { streaming = false } = {}) {
    if (item.thread_id && this.threadId && item.thread_id !== this.threadId) return;
    const el = this.#itemElement(item, streaming);
    const existing = this.items.get(item.id);
    if (!el) {
      existing?.el.remove();
      this.items.delete(item.id);
      return;
    }
    if (existing) existing.el.replaceWith(el);
    else this.log.append(el);
    this.items.set(item.id, { item, el });
    this.#scroll();
  }

  #itemElement(item, streaming = false) {
    if (HIDDEN_ITEMS.has(item.type)) return null;
    const data = { itemId: item.id, itemType: item.type };
    switch (item.type) {
      case "user_message": {
        const parts = item.content.map((part) => (part.type === "input_tag" ? this.#entityLink(part, `@${part.text}`, "tp-mention") : isolated(part.text ?? "")));
        const said = item.content.map((part) => part.text ?? "").join(" ");
        return h("div", { class: "tp-msg tp-msg--user", dataset: data }, h("div", { class: "tp-bubble", dir: directionOf(said) }, parts));
      }
      case "assistant_message": {
        const text = item.content.map((part) => part.text ?? "").join("\n\n");
        const body = text ? richText(text) : h("span", { class: "tp-typing", "aria-label": "Assistant is typing" }, h("i"), h("i"), h("i"));
        // Feedback on a finished answer, as ChatKit's threadItemActions.feedback (items.feedback).
        const actions = streaming || !text ? null : h("div", { class: "tp-msg-actions" }, this.#feedbackButton(item, "positive", "👍", "Good answer"), this.#feedbackButton(item, "negative", "👎", "Bad answer"));
        // The tasks the answer names (its entity annotations), each a link to the task panel.
        const sources = streaming ? [] : entitySources(item);
        const linked = sources.length ? h("div", { class: "tp-sources", "aria-label": "Tasks in this answer" }, sources.map((source) => this.#entityLink(source, source.title, "tp-source"))) : null;
        return h("div", { class: ["tp-msg", "tp-msg--assistant", streaming ? "tp-msg--streaming" : null], dataset: data }, h("div", { class: "tp-bubble", dir: directionOf(text) }, body, linked), actions);
      }
      case "workflow": {
        const tasks = item.workflow.tasks.filter(Boolean);
        const summary = item.workflow.summary;
        return h(
          "div",
          { class: "tp-workflow", dataset: data },
          h(
            "ul",
            {},
            tasks.map((task) =>
              h(
                "li",
                { class: ["tp-step", `tp-step--${task.status_indicator ?? "none"}`], dir: "auto" },
                h("span", { class: "tp-step-icon", "aria-hidden": "true" }),
                isolated(task.title ?? task.content ?? task.type)
              )
            )
          ),
          summary?.title ? h("div", { class: "tp-step-summary", dir: "auto" }, isolated(summary.title)) : null
        );
      }
      case "task": {
        const task = item.task;
        return h(
          "div",
          { class: "tp-workflow", dataset: data },
          h("ul", {}, h("li", { class: ["tp-step", `tp-step--${task.status_indicator ?? "none"}`], dir: "auto" }, h("span", { class: "tp-step-icon", "aria-hidden": "true" }), isolated(task.title ?? task.type)))
        );
      }
      case "structured_input": {
        // ChatKit's structured input (the assistant's `ask_user`): its question, one button per
        // option while it is pending, and Skip; the answer (threads.add_structured_input) resumes the turn.
        const [question] = item.inputs ?? [];
        if (!question) return null;
        const answer = question.answer?.skipped ? "Skipped" : (question.answer?.values ?? []).join(", ");
        const submit = (values, status) =>
          this.busy ? null : this.#run("threads.add_structured_input", { thread_id: this.threadId, item_id: item.id, input: { status, answers: values.length ? { [question.id]: { values } } : {} } });
        const options = item.status === "pending" && question.type === "multiple_choice" ? question.options : [];
        const choices =
          item.status === "pending"
            ? h(
                "div",
                { class: "tp-choices" },
                options.map((option) => h("button", { type: "button", class: "tp-btn", dataset: { choice: option.value }, onClick: () => submit([option.value], "answered") }, option.value)),
                h("button", { type: "button", class: "tp-btn", dataset: { choice: "" }, onClick: () => submit([], "skipped") }, "Skip")
              )
            : null;
        return h(
          "div",
          { class: "tp-msg tp-msg--assistant tp-structured", dataset: data },
          h("div", { class: "tp-bubble", dir: directionOf(question.question) }, isolated(question.question), answer ? h("div", { class: "tp-step-summary" }, isolated(answer)) : null),
          choices
        );
      }
      case "widget": {
        const widget = renderWidget(item.widget, { onAction: (action, control) => this.#action(action, item, control) });
        // Laid out in the direction of its own words (an Urdu thread's widgets are Urdu).
        return h("div", { class: "tp-widget", dataset: data, dir: directionOf(widgetText(item.widget)) }, widget);
      }
      default: {
        const text = item.content?.map?.((part) => part.text ?? "").join("") ?? "";
        return text ? h("div", { class: "tp-msg tp-msg--assistant", dataset: data }, h("div", { class: "tp-bubble", dir: directionOf(text) }, isolated(text))) : null;
      }
    }
  }

  /** A tagged task or an annotated one: a button that calls `entities.onClick` (the panel focuses it). */
  #entityLink(entity, label, kind) {
    const onClick = this.options.entities?.onClick;
    const entityData = { id: entity.id, title: entity.title ?? entity.text, data: entity.data ?? {} };
    if (!onClick) return h("span", { class: kind }, label);
    return h("button", { type: "button", class: kind, title: "Show this task", dataset: { taskId: entityTaskId(entityData) }, onClick: () => onClick(entityData) }, label);
  }

  #feedbackButton(item, kind, label, title) {
    return h(
      "button",
      {
        type: "button",
        class: "tp-icon-btn tp-feedback",
        title,
        "aria-label": title,
        dataset: { feedback: kind },
        onClick: async (event) => {
          const button = event.currentTarget;
          try {
            await this.chatkit.request("items.feedback", { thread_id: item.thread_id ?? this.threadId, item_ids: [item.id], kind });
            for (const other of button.parentElement.querySelectorAll(".tp-feedback")) other.setAttribute("aria-pressed", String(other === button));
          } catch (error) {
            this.showError(`Could not send feedback. ${error.message}`);
          }
        },
      },
      label
    );
  }

  #scroll(force = false) {
    const nearBottom = this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < 120;
    if (force || nearBottom || this.busy) this.log.scrollTop = this.log.scrollHeight;
  }

  #autosize() {
    this.input.rows = Math.min(6, Math.max(1, this.input.value.split("\n").length));
  }

  #showProgress(text) {
    this.progress.hidden = false;
    this.progress.replaceChildren(h("span", { class: "tp-spinner", "aria-hidden": "true" }), ...isolated(text));
  }

  #hideProgress() {
    this.progress.hidden = true;
  }

  showError(message, { retry = false } = {}) {
    this.banner.hidden = false;
    this.banner.className = "tp-banner tp-banner--error";
    const parts = [h("span", { class: "tp-banner-text", dir: directionOf(message) }, isolated(message))];
    if (retry) parts.push(h("button", { type: "button", class: "tp-btn tp-btn--outline tp-btn--sm", onClick: () => this.#retry() }, "Retry"));
    parts.push(h("button", { type: "button", class: "tp-icon-btn", "aria-label": "Dismiss", onClick: () => this.clearBanner() }, "×"));
    this.banner.replaceChildren(...parts);
  }

  showNotice({ level = "info", message, title }) {
    this.banner.hidden = false;
    this.banner.className = `tp-banner tp-banner--${level === "danger" ? "error" : level}`;
    this.banner.replaceChildren(
      h("span", { class: "tp-banner-text", dir: directionOf(`${title ?? ""} ${message ?? ""}`) }, title ? h("strong", {}, `${title}: `) : null, isolated(message)),
      h("button", { type: "button", class: "tp-icon-btn", "aria-label": "Dismiss", onClick: () => this.clearBanner() }, "×")
    );
  }

  clearBanner() {
    this.banner.hidden = true;
    this.banner.replaceChildren();
  }
}
