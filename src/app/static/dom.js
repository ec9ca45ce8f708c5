// A tiny element builder. Text always goes in as text nodes (never HTML), so nothing a model or a
// user wrote can become markup; no inline styles or handlers, so the page runs under a strict CSP.

export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") {
      el.className = Array.isArray(value) ? value.filter(Boolean).join(" ") : value;
    } else if (name === "dataset") {
      Object.assign(el.dataset, value);
    } else if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name === "text") {
      el.textContent = value;
    } else if (value === true) {
      el.setAttribute(name, "");
    } else {
      el.setAttribute(name, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/**
 * Plain text with a little Markdown a chat answer uses: paragraphs, "- " / "1. " lists, **bold**
 * and `code`. Built as DOM nodes; nothing is parsed as HTML.
 */
export function richText(text) {
  const root = h("div", { class: "tp-rich", dir: directionOf(text) });
  const lines = String(text ?? "").split("\n");
  let list = null;
  let paragraph = [];
  const flush = () => {
    if (paragraph.length) {
      root.append(h("p", { dir: "auto" }, inline(paragraph.join("\n"))));
      paragraph = [];
    }
  };
  for (const line of lines) {
    const bullet = /^\s*(?:[-*•]|\d+[.)])\s+(.*)$/.exec(line);
    if (bullet) {
      flush();
      const ordered = /^\s*\d/.test(line);
      if (!list || (list.tagName === "OL") !== ordered) {
        list = h(ordered ? "ol" : "ul");
        root.append(list);
      }
      list.append(h("li", { dir: "auto" }, inline(bullet[1])));
    } else if (!line.trim()) {
      flush();
      list = null;
    } else {
      list = null;
      paragraph.push(line);
    }
  }
  flush();
  return root;
}

function inline(text) {
  const parts = [];
  const pattern = /(\*\*[^*]+\*\*|`[^`]+`)/g;
  let last = 0;
  for (const match of text.matchAll(pattern)) {
    if (match.index > last) parts.push(...isolated(text.slice(last, match.index)));
    const token = match[0];
    parts.push(token.startsWith("**") ? h("strong", {}, isolated(token.slice(2, -2))) : h("code", { dir: "ltr" }, token.slice(1, -1)));
    last = match.index + token.length;
  }
  if (last < text.length) parts.push(...isolated(text.slice(last)));
  return parts;
}

// ---- direction -------------------------------------------------------------------------------
// Urdu (and any right-to-left script) is laid out right to left, English left to right, each
// message, widget and notice by its own text. Inside right-to-left text, the Unicode bidi algorithm
// turns the numbers of an ISO date after Arabic-script letters into "Arabic numbers" and lays the
// date out reversed ("2026-12-07" shows as "07-12-2026"): every ISO date (and time) is isolated in a
// left-to-right span, so it reads in order in either direction.

const RTL_CHAR = /[\u0590-\u08FF\uFB1D-\uFDFF\uFE70-\uFEFF]/u;
const STRONG_CHAR = /[\p{L}]/u;
const ISO_DATE = /\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?(?:Z|[+-]\d{2}:?\d{2})?)?/g;

/** "rtl" or "ltr" by the first letter of `text` (as dir="auto" decides), "auto" when it has none. */
export function directionOf(text) {
  for (const char of String(text ?? "")) {
    if (RTL_CHAR.test(char)) return "rtl";
    if (STRONG_CHAR.test(char)) return "ltr";
  }
  return "auto";
}

/** `text` as nodes, each ISO date in it isolated left to right (`<span dir="ltr" class="tp-date">`). */
export function isolated(text) {
  const parts = [];
  let last = 0;
  for (const match of String(text ?? "").matchAll(ISO_DATE)) {
    if (match.index > last) parts.push(text.slice(last, match.index));
    parts.push(h("span", { dir: "ltr", class: "tp-date" }, match[0]));
    last = match.index + match[0].length;
  }
  if (last < String(text ?? "").length) parts.push(String(text).slice(last));
  return parts;
}

export function formatDay(isoDate) {
  if (!isoDate) return "";
  const [y, m, d] = isoDate.split("-").map(Number);
  const day = new Date(y, m - 1, d);
  const today = new Date();
  today.setHours(0, 0, 0, 0);
  const diff = Math.round((day - today) / 86_400_000);
  if (diff === 0) return "today";
  if (diff === 1) return "tomorrow";
  if (diff === -1) return "yesterday";
  const sameYear = day.getFullYear() === today.getFullYear();
  return day.toLocaleDateString(undefined, { weekday: Math.abs(diff) < 7 ? "short" : undefined, month: "short", day: "numeric", year: sameYear ? undefined : "numeric" });
}

export function formatWhen(isoDateTime) {
  if (!isoDateTime) return "";
  const when = new Date(isoDateTime);
  const now = new Date();
  if (when.toDateString() === now.toDateString()) {
    return when.toLocaleTimeString(undefined, { hour: "numeric", minute: "2-digit" });
  }
  return when.toLocaleDateString(undefined, { month: "short", day: "numeric" });
}
