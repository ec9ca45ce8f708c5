// Where TaskPilot is and how this app signs in. Each setting is read from a <meta> tag of
// index.html first (empty by default: a deploy may fill it in, as TaskPilot does for its own page),
// then from the VITE_* variable the build was made with (.env.local or the environment).

function meta(name) {
  return document.querySelector(`meta[name="${name}"]`)?.content?.trim() || "";
}

function origin(value) {
  const url = new URL(value || window.location.origin, window.location.href);
  return new URL(url.pathname.endsWith("/") ? url.pathname : `${url.pathname}/`, url).toString();
}

const apiBase = origin(meta("taskpilot-url") || import.meta.env.VITE_TASKPILOT_URL);
const sameOrigin = new URL(apiBase).origin === window.location.origin;

export const config = Object.freeze({
  // TaskPilot's base URL, ending in "/". Empty: this app's own origin (`npm run dev` proxies
  // TaskPilot's routes there). Another origin must be listed in TaskPilot's CORS_ORIGINS.
  apiBase,
  // TaskPilot's own page (its `/`, with the built-in console that needs no CDN). On this app's own
  // origin `/` is this app: under `npm run dev` the page is at the proxy's target (vite.config.js
  // defines it); a build served beside TaskPilot on one origin names it with taskpilot-page-url.
  pageUrl:
    meta("taskpilot-page-url") ||
    import.meta.env.VITE_TASKPILOT_PAGE_URL ||
    (sameOrigin ? __TASKPILOT_PROXY_TARGET__ : apiBase),
  // An endpoint answering {"token": "<JWT>"} for the browser's session (Better Auth:
  // https://app.example.com/api/auth/token). Empty: development tokens from TaskPilot
  // (AUTH_MODE=dev), for a user name typed into the app.
  tokenUrl: meta("taskpilot-token-url") || import.meta.env.VITE_TASKPILOT_TOKEN_URL || "",
  // Self-hosted mode: the key from OpenAI's domain allowlist; localhost needs none.
  domainKey: meta("chatkit-domain-key") || import.meta.env.VITE_CHATKIT_DOMAIN_KEY || "domain_pk_localhost_dev",
});
