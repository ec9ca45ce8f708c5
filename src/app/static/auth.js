// Where the page's bearer tokens come from.
//
// - "host": the host application defines `window.taskpilotToken` (or passes `getToken` to
//   `mount`): a function returning a JWT, or a promise of one. With Better Auth's JWT plugin:
//   `window.taskpilotToken = async () => (await authClient.token()).data?.token`.
// - "dev": the server runs with AUTH_MODE=dev; the page mints a development token for a user name
//   typed on the page (POST /api/dev/token, a route production servers do not have).
// - "none": neither; the page explains how to provide tokens.

const USER_KEY = "taskpilot.devUser";
const EXPIRY_MARGIN_MS = 60_000;

export function decodeJwt(token) {
  try {
    const payload = token.split(".")[1];
    const base64 = payload.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(payload.length / 4) * 4, "=");
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return {};
  }
}

function storage() {
  try {
    return window.localStorage;
  } catch {
    return null;
  }
}

export class Auth extends EventTarget {
  constructor(mode, { getToken = null, devTokenPath = "/api/dev/token" } = {}) {
    super();
    this.mode = mode;
    this.getToken = getToken;
    this.devTokenPath = devTokenPath;
    this.api = null; // set by the app: minting dev tokens needs the base URL
    this.cached = null; // { token, expiresAt, user }
    this.pending = null;
    this.devUser = mode === "dev" ? storage()?.getItem(USER_KEY) || null : null;
  }

  /** Who the page is signed in as, if it knows. */
  get user() {
    if (this.mode === "dev") return this.devUser;
    return this.cached?.user ?? null;
  }

  get signedIn() {
    return this.mode === "host" || (this.mode === "dev" && Boolean(this.devUser));
  }

  async token() {
    if (this.cached && this.cached.expiresAt - EXPIRY_MARGIN_MS > Date.now()) return this.cached.token;
    if (!this.pending) {
      this.pending = this.#fetchToken().finally(() => {
        this.pending = null;
      });
    }
    return this.pending;
  }

  async #fetchToken() {
    let token = null;
    if (this.mode === "host") {
      token = await this.getToken();
    } else if (this.mode === "dev" && this.devUser) {
      const minted = await this.api.publicJson(this.devTokenPath, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ user_id: this.devUser }),
      });
      token = minted.token;
    }
    if (typeof token !== "string" || !token) {
      this.cached = null;
      return null;
    }
    const claims = decodeJwt(token);
    const expiresAt = typeof claims.exp === "number" ? claims.exp * 1000 : Date.now() + 5 * 60_000;
    const user = claims.name || claims.email || claims.sub || null;
    this.cached = { token, expiresAt, user };
    this.dispatchEvent(new Event("token"));
    return token;
  }

  /** Forget `token` (the server refused it) so the next call fetches a fresh one. */
  invalidate(token) {
    if (this.cached?.token === token) this.cached = null;
  }

  /** The server refused even a fresh token: let the page say so. */
  unauthorized(error) {
    this.dispatchEvent(new CustomEvent("unauthorized", { detail: error }));
  }

  /** Development sign-in: mint a token for `user` first, so a refusal leaves the page as it was. */
  async signIn(user) {
    const previous = this.devUser;
    this.devUser = user;
    this.cached = null;
    try {
      await this.token();
    } catch (error) {
      this.devUser = previous;
      this.cached = null;
      throw error;
    }
    storage()?.setItem(USER_KEY, user);
    this.dispatchEvent(new Event("change"));
  }

  signOut() {
    this.devUser = null;
    this.cached = null;
    storage()?.removeItem(USER_KEY);
    this.dispatchEvent(new Event("change"));
  }
}
