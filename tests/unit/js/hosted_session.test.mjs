// The rules of src/app/static/hosted-session.js under Node's own test runner, with a fake `fetch`,
// a fake clock and an in-memory storage: the edge cases the browser tests do not reach.
// Run: node --test tests/unit/js/ (tests/unit/test_hosted_session_js.py runs it under pytest).

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  ClientSecretError,
  REUSE_MARGIN_MS,
  STORAGE_KEY,
  createClientSecretProvider,
  describeClientSecretError,
  retryAfterSeconds,
  tokenSubject,
} from "../../../src/app/static/hosted-session.js";

const NOW = Date.parse("2026-12-02T03:00:00Z");

function jwt(claims) {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${part({ alg: "HS256" })}.${part(claims)}.signature`;
}

const ALICE = jwt({ sub: "alice", exp: NOW / 1000 + 900 });
const BOB = jwt({ sub: "bob", exp: NOW / 1000 + 900 });

function memory() {
  const values = new Map();
  return {
    values,
    getItem: (key) => (values.has(key) ? values.get(key) : null),
    setItem: (key, value) => values.set(key, String(value)),
    removeItem: (key) => values.delete(key),
  };
}

function json(status, body, headers = {}) {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json", ...headers } });
}

let counter = 0;
function session(ttlSeconds = 600) {
  counter += 1;
  return { client_secret: `ek_${counter}`, session_id: `cksess_${counter}`, expires_at: new Date(NOW + ttlSeconds * 1000).toISOString() };
}

/** A provider whose `fetch` answers from `answers` (functions of the request) and records calls. */
function setup({ token = ALICE, answers = [], baseUrl = "https://tasks.example.com", storage = memory(), now = () => NOW, invalidateToken } = {}) {
  const calls = [];
  const state = { token };
  const provider = createClientSecretProvider({
    baseUrl,
    getToken: async () => state.token,
    invalidateToken,
    storage,
    now,
    fetch: async (url, init) => {
      const call = { url, method: init.method, headers: init.headers, body: init.body ? JSON.parse(init.body) : null, credentials: init.credentials };
      calls.push(call);
      const answer = answers.shift();
      if (!answer) throw new Error(`unexpected request ${init.method} ${url}`);
      return answer(call);
    },
  });
  return { provider, calls, storage, state };
}

test("mints with the bearer token when the tab holds nothing, and stores the session for the user", async () => {
  const minted = session();
  const { provider, calls, storage } = setup({ answers: [() => json(200, minted)] });
  assert.equal(await provider.getClientSecret(null), minted.client_secret);
  assert.equal(calls.length, 1);
  assert.equal(calls[0].url, "https://tasks.example.com/api/chatkit/sessions");
  assert.equal(calls[0].method, "POST");
  assert.equal(calls[0].headers.Authorization, `Bearer ${ALICE}`);
  assert.equal(calls[0].credentials, "omit", "no cookies: the bearer token says who");
  assert.deepEqual(JSON.parse(storage.getItem(STORAGE_KEY)), { ...minted, owner: "alice" });
  assert.deepEqual(provider.held(), { sessionId: minted.session_id, expiresAt: new Date(minted.expires_at) });
});

test("reuses a held secret with more than a minute left, and only then", async () => {
  const storage = memory();
  const held = session(REUSE_MARGIN_MS / 1000 + 1);
  storage.setItem(STORAGE_KEY, JSON.stringify({ ...held, owner: "alice" }));
  const reuse = setup({ storage });
  assert.equal(await reuse.provider.getClientSecret(null), held.client_secret);
  assert.equal(reuse.calls.length, 0);

  const fresh = session();
  const late = setup({ storage, now: () => NOW + 2000, answers: [() => json(200, fresh)] });
  assert.equal(await late.provider.getClientSecret(undefined), fresh.client_secret, "59 s left: minted anew");
  assert.equal(late.calls.length, 1);
});

test("never hands one user's secret to another, and drops a malformed one", async () => {
  const storage = memory();
  storage.setItem(STORAGE_KEY, JSON.stringify({ ...session(), owner: "alice" }));
  const mine = session();
  const bob = setup({ token: BOB, storage, answers: [() => json(200, mine)] });
  assert.equal(await bob.provider.getClientSecret(null), mine.client_secret);
  assert.equal(JSON.parse(storage.getItem(STORAGE_KEY)).owner, "bob");

  storage.setItem(STORAGE_KEY, "{not json");
  const again = session();
  const repaired = setup({ token: BOB, storage, answers: [() => json(200, again)] });
  assert.equal(await repaired.provider.getClientSecret(null), again.client_secret);
});

test("concurrent calls for the same secret share one request", async () => {
  const minted = session();
  let release;
  const gate = new Promise((resolve) => (release = resolve));
  const { provider, calls } = setup({ answers: [async () => (await gate, json(200, minted))] });
  const both = Promise.all([provider.getClientSecret(null), provider.getClientSecret(null)]);
  release();
  assert.deepEqual(await both, [minted.client_secret, minted.client_secret]);
  assert.equal(calls.length, 1);
});

test("the current secret is refreshed, naming it, and the stored one replaced", async () => {
  const storage = memory();
  const old = session();
  storage.setItem(STORAGE_KEY, JSON.stringify({ ...old, owner: "alice" }));
  const next = session();
  const { provider, calls } = setup({ storage, answers: [() => json(200, next)] });
  assert.equal(await provider.getClientSecret(old.client_secret), next.client_secret);
  assert.equal(calls[0].url, "https://tasks.example.com/api/chatkit/sessions/refresh");
  assert.deepEqual(calls[0].body, { current_client_secret: old.client_secret });
  assert.equal(JSON.parse(storage.getItem(STORAGE_KEY)).client_secret, next.client_secret);
});

test("a failed refresh forgets the secret ChatKit gave up, with the problem's words and delay", async () => {
  const storage = memory();
  const old = session();
  storage.setItem(STORAGE_KEY, JSON.stringify({ ...old, owner: "alice" }));
  const problem = { type: "about:blank", title: "Service Unavailable", status: 503, detail: "OpenAI is rate-limiting this server's ChatKit sessions; retry in 17 seconds." };
  const { provider } = setup({ storage, answers: [() => json(503, problem, { "Retry-After": "17" })] });
  const error = await provider.getClientSecret(old.client_secret).catch((e) => e);
  assert.ok(error instanceof ClientSecretError);
  assert.equal(error.message, `Service Unavailable: ${problem.detail}`);
  assert.equal(error.status, 503);
  assert.equal(error.retryAfter, 17);
  assert.equal(describeClientSecretError(error), error.message, "the detail already says when");
  assert.equal(storage.getItem(STORAGE_KEY), null);
});

test("a refresh answered 409 (another tab refreshed that secret first) mints a new session instead", async () => {
  const storage = memory();
  const old = session();
  storage.setItem(STORAGE_KEY, JSON.stringify({ ...old, owner: "alice" }));
  const problem = { type: "about:blank", title: "Conflict", status: 409, detail: "This session was already refreshed." };
  const minted = session();
  const { provider, calls } = setup({ storage, answers: [() => json(409, problem), () => json(200, minted)] });
  assert.equal(await provider.getClientSecret(old.client_secret), minted.client_secret);
  assert.deepEqual(
    calls.map((call) => call.url),
    ["https://tasks.example.com/api/chatkit/sessions/refresh", "https://tasks.example.com/api/chatkit/sessions"]
  );
  assert.equal(JSON.parse(storage.getItem(STORAGE_KEY)).client_secret, minted.client_secret);
});

test("signed out: nothing is asked and the stored secret is cleared", async () => {
  const storage = memory();
  storage.setItem(STORAGE_KEY, JSON.stringify({ ...session(), owner: "alice" }));
  const { provider, calls } = setup({ token: null, storage });
  const error = await provider.getClientSecret(null).catch((e) => e);
  assert.equal(error.signedOut, true);
  assert.equal(error.status, 401);
  assert.match(error.message, /^Not signed in: /);
  assert.equal(calls.length, 0);
  assert.equal(storage.getItem(STORAGE_KEY), null);
});

test("a refused token is replaced once; refused again, the user is signed out", async () => {
  const invalidated = [];
  const unauthorized = { title: "Unauthorized", status: 401, detail: "The bearer token has expired; sign in again." };
  const minted = session();
  const ctx = setup({
    invalidateToken: (token) => {
      invalidated.push(token);
      ctx.state.token = BOB;
    },
    answers: [() => json(401, unauthorized), (call) => (call.headers.Authorization === `Bearer ${BOB}` ? json(200, minted) : json(401, unauthorized))],
  });
  assert.equal(await ctx.provider.getClientSecret(null), minted.client_secret);
  assert.deepEqual(invalidated, [ALICE]);

  const storage = memory();
  storage.setItem(STORAGE_KEY, JSON.stringify({ ...session(), owner: "alice" }));
  const refused = setup({ storage, invalidateToken: () => {}, answers: [() => json(401, unauthorized)] });
  const error = await refused.provider.getClientSecret("ek_old").catch((e) => e);
  assert.equal(error.message, `Unauthorized: ${unauthorized.detail}`);
  assert.equal(error.signedOut, true);
  assert.equal(storage.getItem(STORAGE_KEY), null);
});

test("unreachable servers and answers without a secret read as words", async () => {
  const offline = setup({ answers: [() => Promise.reject(new TypeError("Failed to fetch"))] });
  const error = await offline.provider.getClientSecret(null).catch((e) => e);
  assert.equal(error.message, "Cannot reach TaskPilot at https://tasks.example.com to start a ChatKit session (Failed to fetch). Check your connection and retry.");

  const html = setup({ answers: [() => new Response("<html>", { status: 200 })] });
  const wrong = await html.provider.getClientSecret(null).catch((e) => e);
  assert.match(wrong.message, /without a client_secret/);

  const bare = setup({ answers: [() => new Response("", { status: 504 })] });
  const timeout = await bare.provider.getClientSecret(null).catch((e) => e);
  assert.equal(timeout.message, "Upstream timeout (HTTP 504) while asking TaskPilot for a ChatKit session.");
});

test("a delay the words do not mention is added; Retry-After may be a date", () => {
  const error = new ClientSecretError("Too Many Requests: slow down.", { status: 429, retryAfter: 1 });
  assert.equal(describeClientSecretError(error), "Too Many Requests: slow down. Retry in 1 second.");
  assert.equal(retryAfterSeconds("Wed, 02 Dec 2026 03:00:30 GMT", NOW), 30);
  assert.equal(retryAfterSeconds("12", NOW), 12);
  assert.equal(retryAfterSeconds(null, NOW), null);
  assert.equal(retryAfterSeconds("soon", NOW), null);
});

test("a path prefix in the base URL is kept", async () => {
  const { provider, calls } = setup({ baseUrl: "https://example.com/tasks", answers: [() => json(200, session())] });
  await provider.getClientSecret(null);
  assert.equal(calls[0].url, "https://example.com/tasks/api/chatkit/sessions");
});

test("release cancels the held session with the token, then forgets it", async () => {
  const storage = memory();
  const held = session();
  storage.setItem(STORAGE_KEY, JSON.stringify({ ...held, owner: "alice" }));
  const { provider, calls } = setup({ storage, answers: [() => new Response(null, { status: 204 })] });
  await provider.release();
  assert.equal(calls[0].method, "DELETE");
  assert.equal(calls[0].url, `https://tasks.example.com/api/chatkit/sessions/${held.session_id}`);
  assert.equal(calls[0].headers.Authorization, `Bearer ${ALICE}`);
  assert.equal(storage.getItem(STORAGE_KEY), null);
  assert.equal(tokenSubject(ALICE), "alice");
  assert.equal(tokenSubject("opaque"), null);
});

test("given routes (a generated client's calls), the rules are the same and no fetch is sent", async () => {
  const asked = [];
  const first = session();
  const second = session();
  const answers = [
    { response: new Response(null, { status: 401 }), body: null },
    { response: new Response(null, { status: 200 }), body: first },
    { response: new Response(null, { status: 429, headers: { "Retry-After": "7" } }), body: { title: "Too many requests", detail: "Wait a little." } },
    { response: new Response(null, { status: 200 }), body: second },
  ];
  const routes = {
    mint: async (bearer) => (asked.push(["mint", bearer]), answers.shift()),
    refresh: async (bearer, current) => (asked.push(["refresh", bearer, current]), answers.shift()),
    cancel: async (bearer, sessionId) => asked.push(["cancel", bearer, sessionId]),
  };
  const tokens = [ALICE, jwt({ sub: "alice", exp: NOW / 1000 + 901 })];
  const storage = memory();
  const provider = createClientSecretProvider({
    baseUrl: "https://tasks.example.com",
    getToken: async () => tokens[0],
    invalidateToken: () => tokens.shift(),
    storage,
    now: () => NOW,
    fetch: async () => assert.fail("the routes, not fetch, reach TaskPilot"),
    routes,
  });
  assert.equal(await provider.getClientSecret(null), first.client_secret, "a refused token is replaced once");
  const failed = await provider.getClientSecret(first.client_secret).catch((error) => error);
  assert.ok(failed instanceof ClientSecretError);
  assert.equal(failed.message, "Too many requests: Wait a little.");
  assert.equal(failed.retryAfter, 7);
  assert.equal(storage.getItem(STORAGE_KEY), null, "the secret ChatKit gave up is forgotten");
  assert.equal(await provider.getClientSecret(first.client_secret), second.client_secret);
  await provider.release();
  assert.deepEqual(asked, [
    ["mint", ALICE],
    ["mint", tokens[0]],
    ["refresh", tokens[0], first.client_secret],
    ["refresh", tokens[0], first.client_secret],
    ["cancel", tokens[0], second.session_id],
  ]);
});
