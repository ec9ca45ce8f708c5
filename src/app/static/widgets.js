// Renders ChatKit widget trees (Card, ListView, Row, Col, Text, Badge, Button, Form and its inputs,
// ...) for the built-in console. It covers the components TaskPilot's widgets use and shows the text
// of any other one, so an unfamiliar widget degrades to readable text instead of disappearing.
// As in ChatKit, every action sent from inside a Form (or a Card with `asForm`) carries the form's
// values in its payload, keyed by each field's `name`; a Card with `confirm` is a confirm dialog.

import { h, richText, isolated } from "./dom.js";

const COLORS = new Set(["primary", "secondary", "tertiary", "success", "warning", "danger", "info", "discovery", "caution", "emphasis"]);

function colorClass(prefix, color) {
  return typeof color === "string" && COLORS.has(color) ? `${prefix}--${color}` : null;
}

function gapClass(gap) {
  return typeof gap === "number" && gap >= 0 && gap <= 8 ? `tp-gap-${Math.round(gap)}` : null;
}

function common(node, extra = []) {
  return {
    class: [...extra, gapClass(node.gap), node.align ? `tp-align-${node.align}` : null, node.justify ? `tp-justify-${node.justify}` : null, node.flex ? "tp-flex" : null],
    dataset: node.key ? { key: node.key } : undefined,
  };
}

/**
 * @param {object} node   a widget node
 * @param {{onAction(action: object, button: HTMLElement): void}} ctx
 */
export function renderWidget(node, ctx) {
  if (node == null || typeof node !== "object") return null;
  const kids = () => (Array.isArray(node.children) ? node.children : node.children ? [node.children] : []).map((child) => renderWidget(child, ctx));
  switch (node.type) {
    case "Card": {
      const dialog = Boolean(node.confirm);
      const card = h(node.asForm ? "form" : "div", {
        ...common(node, ["tp-w-card", node.size ? `tp-w-card--${node.size}` : null, dialog ? "tp-w-card--confirm" : null]),
        role: dialog ? "alertdialog" : null,
      });
      const inner = node.asForm ? formContext(card, ctx) : ctx;
      card.append(...childrenOf(node).map((child) => renderWidget(child, inner)).filter(Boolean));
      if (dialog) {
        const title = childrenOf(node).find((child) => child?.type === "Title");
        if (title?.value) card.setAttribute("aria-label", title.value);
      }
      const footer = [node.cancel, node.confirm].filter(Boolean).map((spec) =>
        actionButton({ label: spec.label, onClickAction: spec.action, variant: spec === node.cancel ? "outline" : "solid", color: spec === node.confirm && dialog ? "danger" : null }, inner)
      );
      if (node.asForm && node.confirm) {
        // The confirm button submits: the browser checks `required` and `pattern` first.
        const confirm = footer.at(-1);
        confirm.type = "submit";
        card.addEventListener("submit", (event) => {
          event.preventDefault();
          inner.onAction(node.confirm.action, confirm);
        });
      }
      if (footer.length) card.append(h("div", { class: "tp-w-card-footer" }, footer));
      return card;
    }
    case "Row":
      return h("div", common(node, ["tp-w-row"]), kids());
    case "Col":
      return h("div", common(node, ["tp-w-col"]), kids());
    case "Box":
      return h("div", common(node, [node.direction === "row" ? "tp-w-row" : "tp-w-col"]), kids());
    case "Form": {
      const form = h("form", common(node, [node.direction === "row" ? "tp-w-row" : "tp-w-col", "tp-w-form"]));
      const inner = formContext(form, ctx);
      form.append(...childrenOf(node).map((child) => renderWidget(child, inner)).filter(Boolean));
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        if (node.onSubmitAction) inner.onAction(node.onSubmitAction, event.submitter ?? form);
      });
      return form;
    }
    case "Input":
      return h("input", {
        ...field(node, ["tp-input", "tp-w-input"], ctx),
        type: node.inputType ?? "text",
        value: node.defaultValue ?? null,
        pattern: node.pattern ?? null,
        placeholder: node.placeholder ?? null,
      });
    case "Textarea": {
      const area = h("textarea", { ...field(node, ["tp-input", "tp-w-input"], ctx), rows: node.rows ?? null, placeholder: node.placeholder ?? null });
      area.value = node.defaultValue ?? "";
      return area;
    }
    case "DatePicker":
      // A day: the value sent is YYYY-MM-DD (the server reads a timestamp as a day too).
      return h("input", { ...field(node, ["tp-input", "tp-w-input"], ctx), type: "date", value: typeof node.defaultValue === "string" ? node.defaultValue.slice(0, 10) : null, min: node.min?.slice?.(0, 10) ?? null, max: node.max?.slice?.(0, 10) ?? null });
    case "Select": {
      const select = h("select", field(node, ["tp-input", "tp-w-input"], ctx));
      if (node.placeholder || node.clearable) select.append(h("option", { value: "" }, node.placeholder ?? ""));
      for (const option of node.options ?? []) {
        select.append(h("option", { value: option.value, disabled: option.disabled }, option.label ?? option.value));
      }
      select.value = node.defaultValue ?? (node.placeholder || node.clearable ? "" : node.options?.[0]?.value ?? "");
      return select;
    }
    case "Checkbox": {
      const box = h("input", { ...field(node, ["tp-w-checkbox"], ctx), type: "checkbox", checked: node.defaultChecked });
      return node.label ? h("label", { class: "tp-w-row tp-gap-2" }, box, node.label) : box;
    }
    case "RadioGroup":
      return h(
        "div",
        common(node, [node.direction === "row" ? "tp-w-row" : "tp-w-col"]),
        (node.options ?? []).map((option) =>
          h("label", { class: "tp-w-row tp-gap-2" }, h("input", { type: "radio", name: node.name, value: option.value, checked: option.value === node.defaultValue, disabled: node.disabled || option.disabled, required: node.required }), option.label)
        )
      );
    case "Title":
      return h("div", { ...common(node, ["tp-w-title", node.size ? `tp-w-title--${node.size}` : null]), dir: "auto" }, isolated(node.value ?? ""));
    case "Text":
      return h(
        "div",
        { dir: "auto", ...common(node, [
          "tp-w-text",
          node.weight ? `tp-w-weight-${node.weight}` : null,
          node.lineThrough ? "tp-w-strike" : null,
          node.truncate ? "tp-w-truncate" : null,
          node.italic ? "tp-w-italic" : null,
          colorClass("tp-w-color", node.color),
        ]) },
        isolated(node.value ?? "")
      );
    case "Caption":
      return h("div", { ...common(node, ["tp-w-caption", colorClass("tp-w-color", node.color)]), dir: "auto" }, isolated(node.value ?? ""));
    case "Markdown": {
      const md = richText(node.value ?? "");
      md.classList.add("tp-w-markdown");
      return md;
    }
    case "Label":
      return h("label", { ...common(node, ["tp-w-caption", "tp-w-label"]), for: node.fieldName ? fieldId(ctx, node.fieldName) : null }, node.value ?? "");
    case "Badge":
      return h(
        "span",
        common(node, ["tp-badge", colorClass("tp-badge", node.color) ?? "tp-badge--secondary", node.variant ? `tp-badge--${node.variant}` : "tp-badge--soft", node.pill ? "tp-badge--pill" : null]),
        node.label ?? ""
      );
    case "Button":
      return actionButton(node, ctx);
    case "Divider":
      return h("hr", { class: "tp-w-divider" });
    case "Spacer":
      return h("div", { class: "tp-w-spacer" });
    case "Icon":
      return null;
    case "Image":
      return h("div", common(node, ["tp-w-caption"]), node.alt ? `[image: ${node.alt}]` : "[image]");
    case "ListView": {
      const list = h("ul", { class: "tp-w-list" }, kids().map((child) => (child?.tagName === "LI" ? child : h("li", {}, child))));
      const status = node.status?.text ? h("div", { class: "tp-w-list-status", dir: "auto" }, isolated(node.status.text)) : null;
      return h("div", common(node, ["tp-w-card", "tp-w-listview"]), status, list);
    }
    case "ListViewItem": {
      const item = h("li", common(node, ["tp-w-list-item", "tp-w-row", node.gap === undefined ? "tp-gap-2" : null]), kids());
      if (node.onClickAction) {
        item.classList.add("tp-w-clickable");
        item.tabIndex = 0;
        item.addEventListener("click", () => ctx.onAction(node.onClickAction, item));
      }
      return item;
    }
    default: {
      // Unknown component: keep its text and children readable.
      const text = node.value ?? node.label ?? node.text ?? null;
      return h("div", common(node, ["tp-w-col", "tp-w-unknown"]), text !== null ? String(text) : null, kids());
    }
  }
}

function childrenOf(node) {
  return Array.isArray(node.children) ? node.children : node.children ? [node.children] : [];
}

let formCount = 0;

/** The context of the components inside a form: their actions carry the form's values. */
function formContext(form, ctx) {
  const prefix = `tp-form-${++formCount}-`;
  return {
    ...ctx,
    fieldPrefix: prefix,
    onAction: (action, control) => ctx.onAction({ ...action, payload: withValues(action.payload, form) }, control),
  };
}

function fieldId(ctx, name) {
  return ctx.fieldPrefix ? ctx.fieldPrefix + name : null;
}

function field(node, extra, ctx) {
  return {
    ...common(node, extra),
    name: node.name,
    id: node.name ? fieldId(ctx, node.name) : null,
    required: node.required,
    disabled: node.disabled,
  };
}

/** The payload with the form's field values merged in by name ("todo.title" nests); a field whose
 * name the payload already has is left out, as ChatKit does. */
function withValues(payload, form) {
  const merged = structuredClone(payload ?? {});
  for (const el of form.querySelectorAll("input[name], select[name], textarea[name]")) {
    if (el.type === "radio" && !el.checked) continue;
    const value = el.type === "checkbox" ? el.checked : el.value;
    const path = el.name.split(".");
    let target = merged;
    for (const part of path.slice(0, -1)) {
      if (typeof target[part] !== "object" || target[part] === null) target[part] = {};
      target = target[part];
    }
    const last = path.at(-1);
    if (!(last in target)) target[last] = value;
  }
  return merged;
}

function actionButton(node, ctx) {
  const variant = node.variant ?? "solid";
  if (node.submit) {
    // Submits the form it is in; the form sends its action with the values.
    return h("button", { type: "submit", class: ["tp-btn", `tp-btn--${variant}`, colorClass("tp-btn", node.color), "tp-btn--sm"], dataset: { action: "submit" }, disabled: node.disabled }, node.label ?? "Submit");
  }
  const button = h(
    "button",
    {
      type: "button",
      class: ["tp-btn", `tp-btn--${variant}`, colorClass("tp-btn", node.color), node.size === "sm" || node.size === "xs" ? "tp-btn--sm" : null],
      dataset: { action: node.onClickAction?.type ?? "" },
      disabled: node.disabled || !node.onClickAction,
    },
    node.label ?? ""
  );
  if (node.onClickAction) {
    button.addEventListener("click", () => ctx.onAction(node.onClickAction, button));
  }
  return button;
}

/** Apply a `widget.component.updated` or `widget.streaming_text.value_delta` to a tree in place. */
export function updateComponent(root, componentId, change) {
  const walk = (node) => {
    if (!node || typeof node !== "object") return false;
    if (node.id === componentId) {
      change(node);
      return true;
    }
    const children = Array.isArray(node.children) ? node.children : node.children ? [node.children] : [];
    return children.some(walk);
  };
  return walk(root);
}
