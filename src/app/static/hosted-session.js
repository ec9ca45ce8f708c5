// Hosted ChatKit in the browser: the rules behind ChatKit's `api.getClientSecret(current)`.
//
// One module, imported as it is by the page at `/` (app.js) and by examples/react (a Vite alias),
// so both front ends follow the same rules. It needs no framework and no DOM: `fetch`, a
// Storage-like object and a token source.
//
// - `getClientSecret(null)` (start-up, reload): reuse the secret this tab already holds when it
//   belongs to the signed-in user and is more than REUSE_MARGIN_MS from its `expires_at`
//   (FR-004). The secret lives in `sessionStorage` only: never in a cookie or the URL, and gone
//   when the tab closes. Otherwise `POST /api/chatkit/sessions` with the user's bearer token.
// - `getClientSecret(current)` (ChatKit's secret expired): `POST /api/chatkit/sessions/refresh`
//   with it; the server mints a new session and cancels the old one. The stored secret is replaced.
//   A 409 (another refresh of that secret won) mints a new session with `POST /api/chatkit/sessions`.
// - No token (signed out), or TaskPilot refuses even a fresh token: the stored secret is cleared.
// - Failures are `ClientSecretError`s whose message is the problem+json `detail` in words, with
//   `status` and `retryAfter` (seconds, from `Retry-After`) for the caller to show.
//
// The API key and the workflow id never reach the browser: TaskPilot holds them (FR-011).

export const REUSE_MARGIN_MS = 60_000;
export const STORAGE_KEY = "taskpilot.chatkit.hosted-session";
export const SESSIONS_PATH = "/api/chatkit/sessions";
export const REFRESH_PATH = "/api/chatkit/sessions/refresh";

const PHRASES = {
  401: "Not signed in",
  403: "Forbidden",
  404: "Not found",
  429: "Too many requests",
  500: "Server error",
  502: "Upstream error",
  503: "Unavailable",
  504: "Upstream timeout",
};

export class ClientSecretError extends Error {
  /**
   * @param {string} message  what happened and what to do, in words
   * @param {{status?: number, retryAfter?: number|null, problem?: object|null, signedOut?: boolean}} [info]
   */
  constructor(message, { status = 0, retryAfter = null, problem = null, signedOut = false } = {}) {
    super(message);
    this.name = "ClientSecretError";
    this.status = status;
    this.retryAfter = retryAfter;
    this.problem = problem;
    this.signedOut = signedOut;
  }
}

/** Seconds from a `Retry-After` header (delta-seconds or an HTTP date); null when absent. */
export function retryAfterSeconds(value, now = Date.now()) {
  if (value === null || value === undefined || value === "") return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, Math.ceil(seconds));
  const when = Date.parse(value);
  return Number.isFinite(when) ? Math.max(0, Math.ceil((when - now) / 1000)) : null;
}

/** The message to show for a failure: its words, plus the wait when the server asked for one. */
export function describeClientSecretError(error) {
  const message = error?.message || "ChatKit could not get a session.";
  const wait = error?.retryAfter;
  if (typeof wait === "number" && wait > 0 && !/\bretry in \d+ seconds?\b/i.test(message)) {
    return `${message} Retry in ${wait} second${wait === 1 ? "" : "s"}.`;
  }
  return message;
}

function errorFrom(response, body, now) {
  const status = response.status;
  const retryAfter = retryAfterSeconds(response.headers.get("Retry-After"), now);
  const detail = body && typeof body === "object" ? body.detail : null;
  const title = body && typeof body.title === "string" && body.title ? body.title : PHRASES[status] ?? "Request failed";
  const message = typeof detail === "string" && detail ? `${title}: ${detail}` : `${title} (HTTP ${status}) while asking TaskPilot for a ChatKit session.`;
  return new ClientSecretError(message, { status, retryAfter, problem: body && typeof body === "object" ? body : null });
}

/** The `sub` claim of a JWT, to tie a stored secret to its user; null for anything else. */
export function tokenSubject(token) {
  try {
    const payload = String(token).split(".")[1];
    const base64 = payload.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(payload.length / 4) * 4, "=");
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return typeof claims.sub === "string" ? claims.sub : null;
  } catch {
    return null;
  }
}

/**
 * What the provider asks of TaskPilot's session routes: each call resolves to the HTTP response
 * and its body as parsed JSON (null when it has none, or none that parses), and rejects only when
 * TaskPilot cannot be reached. The default sends `fetch`es; examples/react passes the same three
 * calls through its client generated from openapi/openapi.json.
 * @typedef {{response: Response, body: unknown}} SessionAnswer
 * @typedef {{
 *   mint(bearer: string): Promise<SessionAnswer>,
 *   refresh(bearer: string, currentClientSecret: string): Promise<SessionAnswer>,
 *   cancel(bearer: string, sessionId: string): Promise<unknown>,
 * }} SessionRoutes
 */

/**
 * The session routes under `baseUrl` through `fetchImpl`.
 * @param {string|URL} baseUrl
 * @param {typeof fetch} [fetchImpl]
 * @returns {SessionRoutes}
 */
export function fetchSessionRoutes(baseUrl, fetchImpl = (...args) => globalThis.fetch(...args)) {
  // Relative to the base, so a TaskPilot behind a path prefix (https://example.com/tasks/) works.
  const base = new URL(baseUrl, globalThis.location?.href);
  if (!base.pathname.endsWith("/")) base.pathname += "/";
  const url = (path) => new URL(path.replace(/^\//, ""), base).toString();
  const post = async (path, bearer, body) => {
    const response = await fetchImpl(url(path), {
      method: "POST",
      headers: { Authorization: `Bearer ${bearer}`, "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
    let parsed = null;
    try {
      parsed = await response.json();
    } catch {
      parsed = null;
    }
    return { response, body: parsed };
  };
  return {
    mint: (bearer) => post(SESSIONS_PATH, bearer, {}),
    refresh: (bearer, currentClientSecret) => post(REFRESH_PATH, bearer, { current_client_secret: currentClientSecret }),
    cancel: (bearer, sessionId) =>
      fetchImpl(url(`${SESSIONS_PATH}/${encodeURIComponent(sessionId)}`), {
        method: "DELETE",
        headers: { Authorization: `Bearer ${bearer}` },
        credentials: "omit",
        keepalive: true,
      }),
  };
}

function memoryStorage() {
  const values = new Map();
  return {
    getItem: (key) => (values.has(key) ? values.get(key) : null),
    setItem: (key, value) => values.set(key, String(value)),
    removeItem: (key) => values.delete(key),
  };
}

/** The tab's sessionStorage, or memory when the browser refuses it (some private modes). */
export function tabStorage() {
  try {
    const storage = globalThis.sessionStorage;
    const probe = `${STORAGE_KEY}.probe`;
    storage.setItem(probe, "1");
    storage.removeItem(probe);
    return storage;
  } catch {
    return memoryStorage();
  }
}

/**
 * @typedef {object} ClientSecretProviderOptions
 * @property {string|URL} baseUrl  TaskPilot's origin (and path prefix, if any)
 * @property {() => Promise<string|null>|string|null} getToken  the user's bearer token; null when signed out
 * @property {{getItem(k: string): string|null, setItem(k: string, v: string): void, removeItem(k: string): void}} [storage]
 * @property {((token: string) => void)|null} [invalidateToken]  forget a refused token so getToken fetches a fresh one
 * @property {typeof fetch} [fetch]  what the default routes send requests with
 * @property {SessionRoutes|null} [routes]  instead of `fetch`: how mint, refresh and cancel reach TaskPilot
 * @property {() => number} [now]
 * @property {string} [storageKey]
 */

/** @param {ClientSecretProviderOptions} options */
export function createClientSecretProvider({
  baseUrl,
  getToken,
  storage = tabStorage(),
  invalidateToken = null,
  fetch: fetchImpl = (...args) => globalThis.fetch(...args),
  routes: givenRoutes = null,
  now = () => Date.now(),
  storageKey = STORAGE_KEY,
}) {
  if (!baseUrl) throw new TypeError("createClientSecretProvider needs baseUrl (TaskPilot's origin)");
  if (typeof getToken !== "function") throw new TypeError("createClientSecretProvider needs getToken()");
  const origin = new URL(baseUrl, globalThis.location?.href).origin;
  const routes = givenRoutes ?? fetchSessionRoutes(baseUrl, fetchImpl);
  const inFlight = new Map(); // concurrent calls for the same secret share one request

  function read() {
    let raw = null;
    try {
      raw = storage.getItem(storageKey);
    } catch {
      return null;
    }
    if (!raw) return null;
    try {
      const held = JSON.parse(raw);
      const expiresAt = Date.parse(held.expires_at);
      if (typeof held.client_secret !== "string" || !held.client_secret || !Number.isFinite(expiresAt)) throw new Error("malformed");
      return { ...held, expiresAtMs: expiresAt };
    } catch {
      clear();
      return null;
    }
  }

  function write(session, owner) {
    try {
      storage.setItem(storageKey, JSON.stringify({ client_secret: session.client_secret, session_id: session.session_id, expires_at: session.expires_at, owner }));
    } catch {
      // A full or refused storage only costs a new session on the next reload.
    }
  }

  function clear() {
    try {
      storage.removeItem(storageKey);
    } catch {
      // nothing stored, nothing to clear
    }
  }

  async function token() {
    const value = await getToken();
    return typeof value === "string" && value ? value : null;
  }

  function signedOut() {
    clear();
    return new ClientSecretError("Not signed in: sign in to chat; a ChatKit session is minted for the signed-in user only.", { status: 401, signedOut: true });
  }

  /** @param {(bearer: string) => Promise<SessionAnswer>} send */
  async function post(send) {
    let bearer = await token();
    if (!bearer) throw signedOut();
    for (let attempt = 0; ; attempt += 1) {
      let response;
      let body;
      try {
        ({ response, body } = await send(bearer));
      } catch (error) {
        if (error?.name === "AbortError") throw error;
        throw new ClientSecretError(`Cannot reach TaskPilot at ${origin} to start a ChatKit session (${error?.message ?? error}). Check your connection and retry.`);
      }
      if (response.status === 401 && attempt === 0 && invalidateToken) {
        // The token may have expired or the server's keys rotated: one retry with a fresh token.
        invalidateToken(bearer);
        const fresh = await token();
        if (fresh && fresh !== bearer) {
          bearer = fresh;
          continue;
        }
      }
      if (!response.ok) {
        const error = errorFrom(response, body, now());
        if (response.status === 401) {
          clear();
          error.signedOut = true;
        }
        throw error;
      }
      const session = body && typeof body === "object" ? /** @type {Record<string, unknown>} */ (body) : null;
      if (!session || typeof session.client_secret !== "string" || !session.client_secret) {
        throw new ClientSecretError("TaskPilot answered without a client_secret; is the API origin right?", { status: response.status });
      }
      return { session, owner: tokenSubject(bearer) };
    }
  }

  async function obtain(current) {
    if (!current) {
      const bearer = await token();
      if (!bearer) throw signedOut();
      const held = read();
      if (held && held.owner === tokenSubject(bearer) && held.expiresAtMs - now() > REUSE_MARGIN_MS) {
        return held.client_secret;
      }
      const { session, owner } = await post((bearer) => routes.mint(bearer));
      write(session, owner);
      return session.client_secret;
    }
    try {
      const { session, owner } = await post((bearer) => routes.refresh(bearer, current));
      write(session, owner);
      return session.client_secret;
    } catch (error) {
      // ChatKit gave this secret up: never hand it out again after a reload.
      if (read()?.client_secret === current) clear();
      // 409: another refresh (a duplicated tab holding the same secret) already replaced it, and
      // only that caller got the newer secret: this tab gets a session of its own.
      if (error?.status === 409) {
        const { session, owner } = await post((bearer) => routes.mint(bearer));
        write(session, owner);
        return session.client_secret;
      }
      throw error;
    }
  }

  /**
   * ChatKit's `api.getClientSecret`: pass it as it is (it needs no `this`).
   * @param {string|null} [current]  the secret ChatKit holds and found expired; null at start-up
   * @returns {Promise<string>}
   */
  function getClientSecret(current = null) {
    const key = current || "";
    if (!inFlight.has(key)) {
      inFlight.set(
        key,
        obtain(current || null).finally(() => inFlight.delete(key))
      );
    }
    return inFlight.get(key);
  }

  /** What the tab holds, without the secret: `{sessionId, expiresAt}` or null. */
  function held() {
    const value = read();
    return value ? { sessionId: value.session_id ?? null, expiresAt: new Date(value.expiresAtMs) } : null;
  }

  /**
   * Signing out: cancel the session this tab holds (while the token still works), then forget it.
   * Best effort: the secret is cleared whether or not the cancel reaches the server.
   */
  async function release() {
    const value = read();
    clear();
    if (!value?.session_id) return;
    try {
      const bearer = await token();
      if (!bearer) return;
      await routes.cancel(bearer, value.session_id);
    } catch {
      // offline: the session expires on its own
    }
  }

  return { getClientSecret, held, clear, release };
}
