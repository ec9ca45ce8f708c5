// The built-in console's @-mention picker: typing "@" and a few letters in the composer lists the
// user's matching tasks (the same search ChatKit's `entities.onTagSearch` gets); choosing one
// (click, Enter or Tab) writes "@<title>" into the message and remembers the task, so the message
// is sent with an `input_tag` for exactly that task (see entities.js `taggedContent`).

import { h } from "./dom.js";

const SEARCH_DELAY_MS = 120;
const MENTION = /(^|\s)@([^@\n]{0,60})$/;

export class TagPicker {
  /**
   * @param {HTMLTextAreaElement} input  the composer
   * @param {(query: string) => Promise<{id: string, title: string, data?: object}[]>} search
   */
  constructor(input, search) {
    this.input = input;
    this.search = search;
    this.tags = []; // chosen: {id, text, data}
    this.options = [];
    this.active = -1;
    this.seq = 0;
    this.timer = null;
    this.element = h("ul", { class: "tp-tag-picker", id: "tp-tag-picker", role: "listbox", "aria-label": "Tasks to tag", hidden: true });
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-controls", "tp-tag-picker");
    input.addEventListener("input", () => this.#update());
    input.addEventListener("blur", () => this.close());
  }

  get open() {
    return !this.element.hidden;
  }

  /** The "@query" being typed before the caret, unless it is a tag already chosen. */
  #mention() {
    const value = this.input.value;
    const before = value.slice(0, this.input.selectionStart ?? value.length);
    const match = MENTION.exec(before);
    if (!match) return null;
    const start = before.length - match[2].length - 1;
    if (this.tags.some((tag) => value.startsWith(`@${tag.text}`, start))) return null;
    return { start, query: match[2] };
  }

  #update() {
    const mention = this.#mention();
    if (!mention) {
      this.close();
      return;
    }
    const seq = ++this.seq;
    clearTimeout(this.timer);
    this.timer = setTimeout(async () => {
      let entities = [];
      try {
        entities = await this.search(mention.query);
      } catch {
        entities = [];
      }
      if (seq === this.seq) this.#render(entities);
    }, SEARCH_DELAY_MS);
  }

  #render(entities) {
    this.options = entities;
    this.active = entities.length ? 0 : -1;
    this.element.hidden = false;
    if (!entities.length) {
      this.element.replaceChildren(h("li", { class: "tp-tag-empty", role: "presentation" }, "No matching task"));
      return;
    }
    this.element.replaceChildren(
      ...entities.map((entity, index) =>
        h(
          "li",
          {
            id: `tp-tag-option-${index}`,
            class: "tp-tag-option",
            role: "option",
            "aria-selected": String(index === this.active),
            dataset: { taskId: entity.data?.task_id ?? entity.id },
            // mousedown, not click: the composer keeps its focus (and caret) while choosing
            onMousedown: (event) => {
              event.preventDefault();
              this.choose(index);
            },
          },
          entity.data?.number ? h("span", { class: "tp-task-number" }, `#${entity.data.number}`) : null,
          " ",
          entity.title,
          entity.group ? h("span", { class: "tp-tag-group" }, entity.group) : null
        )
      )
    );
    this.input.setAttribute("aria-activedescendant", "tp-tag-option-0");
  }

  #move(step) {
    if (!this.options.length) return;
    this.active = (this.active + step + this.options.length) % this.options.length;
    for (const [index, el] of [...this.element.children].entries()) el.setAttribute("aria-selected", String(index === this.active));
    this.input.setAttribute("aria-activedescendant", `tp-tag-option-${this.active}`);
  }

  /** The composer's keydown while the picker is open; true when the picker used the key. */
  handleKey(event) {
    if (!this.open) return false;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      this.#move(event.key === "ArrowDown" ? 1 : -1);
      return true;
    }
    if ((event.key === "Enter" || event.key === "Tab") && this.active >= 0) {
      event.preventDefault();
      this.choose(this.active);
      return true;
    }
    if (event.key === "Escape") {
      event.preventDefault();
      this.close();
      return true;
    }
    return false;
  }

  choose(index) {
    const entity = this.options[index];
    const mention = this.#mention();
    if (!entity || !mention) return;
    const value = this.input.value;
    const caret = this.input.selectionStart ?? value.length;
    const inserted = `@${entity.title} `;
    this.input.value = value.slice(0, mention.start) + inserted + value.slice(caret);
    const at = mention.start + inserted.length;
    this.input.setSelectionRange(at, at);
    this.tags.push({ id: entity.id, text: entity.title, data: entity.data ?? {} });
    this.close();
    this.input.focus();
  }

  /** The tags chosen for the message being sent (the picker starts afresh). */
  take() {
    const tags = this.tags;
    this.tags = [];
    this.close();
    return tags;
  }

  /** A refused message went back into the composer: so do its tags. */
  restore(tags) {
    this.tags = tags;
  }

  close() {
    ++this.seq;
    clearTimeout(this.timer);
    this.element.hidden = true;
    this.element.replaceChildren();
    this.options = [];
    this.active = -1;
    this.input.removeAttribute("aria-activedescendant");
  }
}
