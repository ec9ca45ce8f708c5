// Renders ChatKit widget trees (Card, Row, Col, Text, Badge, Button, ...) for the built-in console.
// It covers the components TaskPilot's widgets use and shows the text of any other one, so an
// unfamiliar widget degrades to readable text instead of disappearing.

import { h, richText } from "./dom.js";

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
      const card = h("div", common(node, ["tp-w-card", node.size ? `tp-w-card--${node.size}` : null]), kids());
      const footer = [node.cancel, node.confirm].filter(Boolean).map((spec, i) =>
        actionButton({ label: spec.label, onClickAction: spec.action, variant: i === 0 && node.cancel ? "outline" : "solid" }, ctx)
      );
      if (footer.length) card.append(h("div", { class: "tp-w-card-footer" }, footer));
      return card;
    }
    case "Row":
      return h("div", common(node, ["tp-w-row"]), kids());
    case "Col":
      return h("div", common(node, ["tp-w-col"]), kids());
    case "Box":
      return h("div", common(node, [node.direction === "row" ? "tp-w-row" : "tp-w-col"]), kids());
    case "Form":
      return h("div", common(node, ["tp-w-col"]), kids());
    case "Title":
      return h("div", { ...common(node, ["tp-w-title", node.size ? `tp-w-title--${node.size}` : null]) }, node.value ?? "");
    case "Text":
      return h(
        "div",
        common(node, [
          "tp-w-text",
          node.weight ? `tp-w-weight-${node.weight}` : null,
          node.lineThrough ? "tp-w-strike" : null,
          node.truncate ? "tp-w-truncate" : null,
          node.italic ? "tp-w-italic" : null,
          colorClass("tp-w-color", node.color),
        ]),
        node.value ?? ""
      );
    case "Caption":
      return h("div", common(node, ["tp-w-caption", colorClass("tp-w-color", node.color)]), node.value ?? "");
    case "Markdown": {
      const md = richText(node.value ?? "");
      md.classList.add("tp-w-markdown");
      return md;
    }
    case "Label":
      return h("div", common(node, ["tp-w-caption"]), node.value ?? "");
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
    case "ListView":
      return h("ul", common(node, ["tp-w-list"]), kids().map((child) => (child?.tagName === "LI" ? child : h("li", {}, child))));
    case "ListViewItem": {
      const item = h("li", common(node, ["tp-w-list-item"]), kids());
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

function actionButton(node, ctx) {
  const variant = node.variant ?? "solid";
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
