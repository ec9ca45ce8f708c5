// HTTP to TaskPilot: bearer tokens on every call, one retry with a fresh token after a 401, and
// failures turned into messages a person can act on (problem+json `detail` when there is one).

export class ApiError extends Error {
  /**
   * @param {string} message
   * @param {{status?: number, problem?: object | null, retryAfter?: number | null}} [info]
   */
  constructor(message, { status = 0, problem = null, retryAfter = null } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.problem = problem;
    this.retryAfter = retryAfter; // whole seconds to wait (429/503 `Retry-After`), or null
  }
}

/**
 * `Retry-After` as whole seconds (delta-seconds or an HTTP date), or null.
 * @param {{headers?: {get?(name: string): string | null}}} response
 * @returns {number | null}
 */
export function retryAfterSeconds(response) {
  const value = response.headers?.get?.("retry-after");
  if (!value) return null;
  const seconds = /^\d+$/.test(value.trim()) ? Number(value) : Math.ceil((Date.parse(value) - Date.now()) / 1000);
  return Number.isFinite(seconds) ? Math.max(1, seconds) : null;
}

/**
 * An `ApiError` describing a non-2xx response: RFC 9457 `detail`, else whatever the body says.
 * @param {Response} response
 * @returns {Promise<ApiError>}
 */
export async function errorFromResponse(response) {
  const status = response.status;
  const retryAfter = retryAfterSeconds(response);
  let text = "";
  try {
    text = await response.text();
  } catch {
    text = "";
  }
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (body && typeof body === "object") {
    const detail = body.detail ?? body.message ?? body.error?.message;
    if (typeof detail === "string" && detail) {
      const title = typeof body.title === "string" && body.title ? body.title : statusPhrase(status);
      return new ApiError(`${title}: ${detail}`, { status, problem: body, retryAfter });
    }
  }
  const short = text && text.length <= 200 && !text.trimStart().startsWith("<") ? `: ${text.trim()}` : "";
  return new ApiError(`${statusPhrase(status)} (HTTP ${status})${short}`, { status, retryAfter });
}

/** @param {number} status */
function statusPhrase(status) {
  /** @type {Record<number, string>} */
  const phrases = {
    400: "Bad request",
    401: "Not signed in",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    413: "Too large",
    429: "Too many requests",
    500: "Server error",
    502: "Upstream error",
    503: "Unavailable",
    504: "Upstream timeout",
  };
  return phrases[status] ?? "Request failed";
}

/** The browser's IANA time zone ("Asia/Karachi"), or null when it cannot say. */
export function browserTimeZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || null;
  } catch {
    return null;
  }
}

/**
 * `init` with `Authorization: Bearer <token>` and `Time-Zone: <timeZone>` added.
 * @param {RequestInfo | URL} input
 * @param {RequestInit | undefined} init
 * @param {string | null} token
 * @param {string | null} [timeZone]
 * @returns {RequestInit & {headers: Headers}}
 */
export function withBearer(input, init, token, timeZone = null) {
  // A Request carries its own headers; `init.headers` would replace them, so start from those.
  const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : {}));
  if (token) headers.set("Authorization", `Bearer ${token}`);
  // "Today", "tomorrow" and "overdue" are the user's dates: the server reads them in this zone.
  if (timeZone && !headers.has("Time-Zone")) headers.set("Time-Zone", timeZone);
  return { ...init, headers };
}

export class Api {
  /**
   * @param {URL} base  TaskPilot's origin (the page's own, or the one its scripts came from)
   * @param {{token(): Promise<string|null>, invalidate(token: string): void, unauthorized(error: ApiError): void}} auth
   * @param {{timeZone?: string|null}} options  the `Time-Zone` sent on every call (null: none; the
   *        assistant then asks through its `get_time_zone` client tool)
   */
  constructor(base, auth, { timeZone = browserTimeZone() } = {}) {
    this.base = base;
    this.auth = auth;
    this.timeZone = timeZone;
  }

  /** @param {string} path */
  url(path) {
    return new URL(path, this.base).toString();
  }

  /**
   * `fetch` with the bearer token; the signature ChatKit's `api.fetch` option expects.
   * @param {RequestInfo | URL} input
   * @param {RequestInit} [init]
   * @returns {Promise<Response>}
   */
  async fetch(input, init = {}) {
    const token = await this.auth.token();
    let response = await this.#send(input, withBearer(input, init, token, this.timeZone));
    if (response.status === 401 && token) {
      this.auth.invalidate(token);
      const fresh = await this.auth.token();
      if (fresh && fresh !== token) response = await this.#send(input, withBearer(input, init, fresh, this.timeZone));
    }
    if (response.status === 401) {
      this.auth.unauthorized(await errorFromResponse(response.clone()));
    }
    return response;
  }

  /**
   * @param {RequestInfo | URL} input
   * @param {RequestInit} init
   * @returns {Promise<Response>}
   */
  async #send(input, init) {
    try {
      return await fetch(input, init);
    } catch (error) {
      const failure = /** @type {{name?: string, message?: string} | null | undefined} */ (error);
      if (failure?.name === "AbortError") throw error;
      throw new ApiError(`Cannot reach TaskPilot at ${this.base.origin} (${failure?.message ?? error}). Is the server running?`);
    }
  }

  /**
   * JSON from `path`, or an `ApiError`.
   * @param {string} path
   * @param {RequestInit} [init]
   * @returns {Promise<any>}
   */
  async json(path, init = {}) {
    const response = await this.fetch(this.url(path), init);
    if (!response.ok) throw await errorFromResponse(response);
    if (response.status === 204) return null;
    return response.json();
  }

  /**
   * JSON from a route that needs no token (health, the development token route).
   * @param {string} path
   * @param {RequestInit} [init]
   * @returns {Promise<any>}
   */
  async publicJson(path, init = {}) {
    const response = await this.#send(this.url(path), init);
    if (!response.ok) throw await errorFromResponse(response);
    return response.json();
  }
}
