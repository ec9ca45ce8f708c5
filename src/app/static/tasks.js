// The task panel beside the chat: the signed-in user's tasks through the REST API, refreshed when
// the assistant reports a `tasks.changed` client effect (and after its own edits). Each task's "Ask"
// button puts it in the chat's composer (`onAsk`), tagged, ready for a question about it.

import { h, formatDay } from "./dom.js";

const FILTERS = [
  { id: "open", label: "Open" },
  { id: "completed", label: "Done" },
  { id: "all", label: "All" },
];
const PAGE = 100;

export class TaskPanel {
  /**
   * @param {import("./api.js").Api} api
   * @param {{onAsk?(task: object): void}} [options]  onAsk: "Ask about this task" was pressed
   */
  constructor(api, { onAsk } = {}) {
    this.api = api;
    this.onAsk = onAsk ?? null;
    this.filter = "open";
    this.highlight = new Set();
    this.focused = null; // the task an entity click asked for (`focus`)
    this.loading = null;
    this.list = h("ul", { class: "tp-task-list", "aria-label": "Tasks" });
    this.summary = h("p", { class: "tp-task-summary", "aria-live": "polite" });
    this.message = h("p", { class: "tp-task-message", hidden: true });
    this.tabs = FILTERS.map((f) =>
      h("button", { type: "button", class: "tp-tab", role: "tab", dataset: { filter: f.id }, "aria-selected": String(f.id === this.filter), onClick: () => this.setFilter(f.id) }, f.label)
    );
    this.element = h(
      "aside",
      { class: "tp-tasks", "aria-labelledby": "tp-tasks-title" },
      h(
        "header",
        { class: "tp-tasks-header" },
        h("h2", { id: "tp-tasks-title" }, "Tasks"),
        h("button", { type: "button", class: "tp-icon-btn", title: "Refresh", "aria-label": "Refresh tasks", onClick: () => this.refresh() }, "↻")
      ),
      this.summary,
      h("div", { class: "tp-tabs", role: "tablist" }, this.tabs),
      this.message,
      this.list
    );
  }

  setFilter(filter) {
    this.filter = filter;
    for (const tab of this.tabs) tab.setAttribute("aria-selected", String(tab.dataset.filter === filter));
    return this.refresh();
  }

  #rowOf(taskId) {
    return [...this.list.querySelectorAll(".tp-task")].find((row) => row.dataset.taskId === taskId) ?? null;
  }

  /** Show one task (a tagged task, or one an answer names, was clicked): scrolled to, marked and
   * focused; the list switches to "All" when the current filter hides it. False when it is gone. */
  async focus(taskId) {
    this.focused = String(taskId);
    await this.loading;
    let row = this.#rowOf(this.focused);
    if (!row) {
      await this.setFilter("all");
      await this.loading;
      row = this.#rowOf(this.focused);
    }
    for (const other of this.list.querySelectorAll(".tp-task--focused")) if (other !== row) other.classList.remove("tp-task--focused");
    if (!row) {
      this.message.hidden = false;
      this.message.className = "tp-task-message";
      this.message.textContent = "That task is not in your list any more.";
      return false;
    }
    row.classList.add("tp-task--focused");
    row.scrollIntoView?.({ block: "nearest" });
    row.focus({ preventScroll: true });
    return true;
  }

  /** Reload from the API; `changedIds` are highlighted briefly (they just changed in the chat). */
  refresh(changedIds = []) {
    for (const id of changedIds) this.highlight.add(String(id));
    // Coalesce bursts (several effects in one turn) into one request, but never lose the last one.
    if (this.loading) {
      this.again = true;
      return this.loading;
    }
    this.loading = this.#load().finally(() => {
      this.loading = null;
      if (this.again) {
        this.again = false;
        this.refresh();
      }
    });
    return this.loading;
  }

  async #load() {
    this.element.setAttribute("aria-busy", "true");
    const highlight = this.highlight;
    this.highlight = new Set();
    try {
      const params = new URLSearchParams({ status: this.filter, sort: "due_date", order: "asc", limit: String(PAGE) });
      const [page, summary] = await Promise.all([this.api.json(`/api/tasks?${params}`), this.api.json("/api/tasks/summary")]);
      this.#renderSummary(summary);
      this.#renderList(page, highlight);
      this.message.hidden = true;
    } catch (error) {
      this.message.hidden = false;
      this.message.className = "tp-task-message tp-task-message--error";
      this.message.textContent = `Could not load tasks. ${error.message}`;
    } finally {
      this.element.removeAttribute("aria-busy");
    }
  }

  clear(text) {
    this.list.replaceChildren();
    this.summary.replaceChildren();
    this.message.hidden = false;
    this.message.className = "tp-task-message";
    this.message.textContent = text;
  }

  #renderSummary(s) {
    const parts = [h("span", { class: "tp-stat" }, h("strong", {}, String(s.open)), " open")];
    if (s.due_today) parts.push(h("span", { class: "tp-stat tp-stat--today" }, h("strong", {}, String(s.due_today)), " due today"));
    if (s.overdue) parts.push(h("span", { class: "tp-stat tp-stat--overdue" }, h("strong", {}, String(s.overdue)), " overdue"));
    parts.push(h("span", { class: "tp-stat" }, h("strong", {}, String(s.completed)), " done"));
    this.summary.replaceChildren(...parts);
  }

  #renderList(page, highlight) {
    const rows = page.items.map((task) => this.#row(task, highlight.has(task.id)));
    if (!rows.length) {
      const empty = {
        open: "Nothing open. Ask the assistant to add a task.",
        completed: "No finished tasks yet.",
        all: "No tasks yet. Ask the assistant to add one.",
      }[this.filter];
      this.list.replaceChildren(h("li", { class: "tp-task-empty" }, empty));
    } else {
      this.list.replaceChildren(...rows);
    }
    if (page.total > page.items.length) {
      this.list.append(h("li", { class: "tp-task-more" }, `Showing ${page.items.length} of ${page.total}.`));
    }
  }

  #row(task, changed) {
    const due = task.due_date ? formatDay(task.due_date) : null;
    const today = new Date();
    const todayIso = `${today.getFullYear()}-${String(today.getMonth() + 1).padStart(2, "0")}-${String(today.getDate()).padStart(2, "0")}`;
    const overdue = !task.completed && task.due_date && task.due_date < todayIso;
    const checkbox = h("input", {
      type: "checkbox",
      class: "tp-task-check",
      checked: task.completed,
      "aria-label": task.completed ? `Reopen #${task.number} ${task.title}` : `Complete #${task.number} ${task.title}`,
      onChange: () => this.#act(task, task.completed ? "reopen" : "complete", checkbox),
    });
    const meta = [
      due ? h("span", { class: ["tp-due", overdue ? "tp-due--overdue" : null] }, overdue ? `Overdue · ${due}` : `Due ${due}`) : null,
      ...task.tags.map((tag) => h("span", { class: "tp-tag" }, `#${tag}`)),
    ].filter(Boolean);
    return h(
      "li",
      {
        class: ["tp-task", task.completed ? "tp-task--done" : null, changed ? "tp-task--changed" : null, task.id === this.focused ? "tp-task--focused" : null],
        dataset: { taskId: task.id },
        tabindex: "-1",
      },
      checkbox,
      h(
        "div",
        { class: "tp-task-body" },
        h("div", { class: "tp-task-title" }, h("span", { class: "tp-task-number" }, `#${task.number}`), " ", task.title),
        meta.length ? h("div", { class: "tp-task-meta" }, meta) : null
      ),
      task.priority !== "medium" ? h("span", { class: ["tp-badge", "tp-badge--soft", task.priority === "high" ? "tp-badge--danger" : "tp-badge--secondary"] }, task.priority) : null,
      this.onAsk
        ? h("button", { type: "button", class: "tp-icon-btn tp-task-ask", title: "Ask about this task", "aria-label": `Ask about #${task.number} ${task.title}`, onClick: () => this.onAsk(task) }, "?")
        : null,
      h("button", { type: "button", class: "tp-icon-btn tp-task-delete", title: "Delete", "aria-label": `Delete #${task.number} ${task.title}`, onClick: (e) => this.#askToDelete(task, e.currentTarget.closest("li")) }, "×")
    );
  }

  // Deleting cannot be undone, so the row first asks; only its Delete button deletes.
  #askToDelete(task, row) {
    const original = [...row.childNodes];
    const cancel = () => {
      row.classList.remove("tp-task--confirm");
      row.replaceChildren(...original);
      row.querySelector(".tp-task-delete")?.focus();
    };
    const confirm = h("button", { type: "button", class: "tp-btn tp-btn--solid tp-btn--danger tp-btn--sm tp-task-confirm-delete", onClick: (e) => this.#act(task, "delete", e.currentTarget) }, "Delete");
    row.classList.add("tp-task--confirm");
    row.replaceChildren(
      h("div", { class: "tp-task-body" }, h("div", { class: "tp-task-title" }, `Delete #${task.number} ${task.title}? This cannot be undone.`)),
      confirm,
      h("button", { type: "button", class: "tp-btn tp-btn--outline tp-btn--sm tp-task-cancel-delete", onClick: cancel }, "Cancel")
    );
    row.addEventListener("keydown", (e) => e.key === "Escape" && cancel(), { once: true });
    confirm.focus();
  }

  async #act(task, action, control) {
    control.disabled = true;
    try {
      if (action === "delete") {
        await this.api.json(`/api/tasks/${task.id}`, { method: "DELETE" });
      } else {
        await this.api.json(`/api/tasks/${task.id}/${action}`, { method: "POST" });
      }
      await this.refresh([task.id]);
    } catch (error) {
      control.disabled = false;
      this.message.hidden = false;
      this.message.className = "tp-task-message tp-task-message--error";
      this.message.textContent = error.message;
    }
  }
}
