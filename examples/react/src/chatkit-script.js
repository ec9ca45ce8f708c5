// ChatKit's web component comes from OpenAI's CDN (the React bindings only wrap it). Loaded once;
// resolves "loaded", or "failed" when the script cannot load (offline, blocked) or takes too long,
// so the app can say so instead of showing an empty box.

export const CHATKIT_SCRIPT = "https://cdn.platform.openai.com/deployments/chatkit/chatkit.js";

/** @type {Promise<"loaded" | "failed"> | null} */
let loading = null;

/** @returns {Promise<"loaded" | "failed">} */
export function loadChatKitScript(timeoutMs = 15_000) {
  if (customElements.get("openai-chatkit")) return Promise.resolve("loaded");
  loading ??= new Promise((resolve) => {
    const script = document.createElement("script");
    script.src = CHATKIT_SCRIPT;
    script.async = true;
    const timer = setTimeout(() => resolve(customElements.get("openai-chatkit") ? "loaded" : "failed"), timeoutMs);
    script.addEventListener("error", () => {
      clearTimeout(timer);
      resolve("failed");
    });
    customElements.whenDefined("openai-chatkit").then(() => {
      clearTimeout(timer);
      resolve("loaded");
    });
    document.head.append(script);
  });
  return loading;
}
