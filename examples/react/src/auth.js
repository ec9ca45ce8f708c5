// Bearer tokens for TaskPilot: where they come from, kept until a minute before they expire, and
// one retry with a fresh token when TaskPilot answers 401.

const EXPIRY_MARGIN_MS = 60_000;

export function tokenClaims(token) {
  try {
    const payload = token.split(".")[1];
    const base64 = payload.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(payload.length / 4) * 4, "=");
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(base64), (c) => c.charCodeAt(0))));
  } catch {
    return {};
  }
}

/** `fetchToken()` returns a JWT (or null when signed out); this caches it while it is valid. */
export function createTokenSource(fetchToken) {
  let cached = null;
  let pending = null;
  return {
    async token() {
      if (cached && cached.expiresAt - EXPIRY_MARGIN_MS > Date.now()) return cached.token;
      pending ??= (async () => {
        const token = await fetchToken();
        if (typeof token !== "string" || !token) {
          cached = null;
          return null;
        }
        const { exp } = tokenClaims(token);
        cached = { token, expiresAt: typeof exp === "number" ? exp * 1000 : Date.now() + 5 * 60_000 };
        return token;
      })().finally(() => {
        pending = null;
      });
      return pending;
    },
    invalidate(token) {
      if (cached?.token === token) cached = null;
    },
  };
}

/**
 * Tokens from your sign-in service. With Better Auth's JWT plugin, either this (its token
 * endpoint, with the session cookie) or its client: `async () => (await authClient.token()).data?.token`.
 */
export function tokenFromUrl(url) {
  return async () => {
    const response = await fetch(url, { credentials: "include", headers: { Accept: "application/json" } });
    if (response.status === 401) return null;
    if (!response.ok) throw new Error(`${url} answered HTTP ${response.status}`);
    return (await response.json()).token ?? null;
  };
}

/** Development only: TaskPilot mints a token for a user name while it runs with AUTH_MODE=dev. */
export function devToken(apiBase, user) {
  return async () => {
    const response = await fetch(new URL("api/dev/token", apiBase), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ user_id: user }),
    });
    if (!response.ok) throw new Error(await problemMessage(response));
    return (await response.json()).token;
  };
}

/**
 * A `fetch` that adds `Authorization: Bearer <token>` and, given `timeZone` (the browser's IANA
 * zone, `Intl.DateTimeFormat().resolvedOptions().timeZone`), `Time-Zone: <zone>`: the one
 * ChatKit's `api.fetch` takes, and the one the task list's REST calls go through.
 */
export function bearerFetch(tokens, { timeZone = null } = {}) {
  return async (input, init = {}) => {
    const send = (token) => {
      // A Request carries its own headers; `init.headers` would replace them, so start from those.
      const headers = new Headers(init.headers ?? (input instanceof Request ? input.headers : undefined));
      if (token) headers.set("Authorization", `Bearer ${token}`);
      // "Today", "tomorrow" and "overdue" are the user's dates: TaskPilot reads them in this zone
      // (without it, DEFAULT_TIME_ZONE; the assistant asks through get_time_zone only when told it is answered).
      if (timeZone && !headers.has("Time-Zone")) headers.set("Time-Zone", timeZone);
      return fetch(input, { ...init, headers });
    };
    const token = await tokens.token();
    let response = await send(token);
    if (response.status === 401 && token) {
      tokens.invalidate(token);
      const fresh = await tokens.token();
      if (fresh && fresh !== token) response = await send(fresh);
    }
    return response;
  };
}

/** Words for a failed response: problem+json `title: detail` when TaskPilot sent one. */
export async function problemMessage(response) {
  try {
    const body = await response.json();
    if (typeof body?.detail === "string" && body.detail) return `${body.title ?? "Error"}: ${body.detail}`;
  } catch {
    // not JSON
  }
  return `TaskPilot answered HTTP ${response.status}`;
}
