// Bearer tokens for TaskPilot: where they come from, kept until a minute before they expire, and
// one retry with a fresh token when TaskPilot answers 401.

import { answered, type ChatKitRequestHeaders, type TaskPilotClient } from "./api/client.ts";

const EXPIRY_MARGIN_MS = 60_000;

/** Where a JWT comes from: a token, or null when the user is signed out. */
export type FetchToken = () => Promise<string | null | undefined> | string | null | undefined;

export type TokenSource = {
  token(): Promise<string | null>;
  invalidate(token: string): void;
};

export function tokenClaims(token: string): { exp?: unknown; sub?: unknown } {
  try {
    const payload = token.split(".")[1] ?? "";
    const base64 = payload.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(payload.length / 4) * 4, "=");
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(base64), (c) => c.charCodeAt(0))));
  } catch {
    return {};
  }
}

/** `fetchToken()` returns a JWT (or null when signed out); this caches it while it is valid. */
export function createTokenSource(fetchToken: FetchToken): TokenSource {
  let cached: { token: string; expiresAt: number } | null = null;
  let pending: Promise<string | null> | null = null;
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
export function tokenFromUrl(url: string): FetchToken {
  return async () => {
    const response = await fetch(url, { credentials: "include", headers: { Accept: "application/json" } });
    if (response.status === 401) return null;
    if (!response.ok) throw new Error(`${url} answered HTTP ${response.status}`);
    const body: { token?: string | null } = await response.json();
    return body.token ?? null;
  };
}

/** Development only: TaskPilot mints a token for a user name while it runs with AUTH_MODE=dev. */
export function devToken(client: TaskPilotClient, user: string): FetchToken {
  return async () => (await answered(client.POST("/api/dev/token", { body: { user_id: user } }))).token;
}

/**
 * A `fetch` that adds `Authorization: Bearer <token>` and, given `timeZone` (the browser's IANA
 * zone, `Intl.DateTimeFormat().resolvedOptions().timeZone`), `Time-Zone: <zone>`: the one
 * ChatKit's `api.fetch` takes, and the one the task list's REST calls go through.
 */
export function bearerFetch(tokens: TokenSource, { timeZone = null }: { timeZone?: string | null } = {}): typeof fetch {
  return async (input, init = {}) => {
    // A Request's body can be read once: the retry after a 401 sends a copy.
    const copy = input instanceof Request ? input.clone() : input;
    const send = (token: string | null, input: RequestInfo | URL) => {
      // A Request carries its own headers; `init.headers` would replace them, so start from those.
      const headers = new Headers(init.headers ?? (input instanceof Request ? input.headers : undefined));
      if (token) headers.set("Authorization", `Bearer ${token}`);
      // "Today", "tomorrow" and "overdue" are the user's dates: TaskPilot reads them in this zone
      // (without it, DEFAULT_TIME_ZONE; the assistant asks through get_time_zone only when told it is answered).
      const zoneHeader = "Time-Zone" satisfies keyof ChatKitRequestHeaders; // the spec's name for it
      if (timeZone && !headers.has(zoneHeader)) headers.set(zoneHeader, timeZone);
      return fetch(input, { ...init, headers });
    };
    const token = await tokens.token();
    let response = await send(token, input);
    if (response.status === 401 && token) {
      tokens.invalidate(token);
      const fresh = await tokens.token();
      if (fresh && fresh !== token) response = await send(fresh, copy);
    }
    return response;
  };
}
