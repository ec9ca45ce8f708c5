// The options the page at `/` gives ChatKit's web component, as src/app/static/chatkit-options.js
// builds them (app.js passes them to <openai-chatkit>.setOptions): each mode's api, the composer,
// the look and the start screen. Their types are checked against @openai/chatkit's by typecheck/
// (tests/unit/test_chatkit_option_types.py); this checks the values, under Node's test runner.
// Run: node --test tests/unit/js/ (tests/unit/test_hosted_session_js.py runs it under pytest).

import assert from "node:assert/strict";
import { test } from "node:test";

import { answerClientTool, changedTaskIds, composerAttachments, DEFAULT_ATTACHMENT_MAX_BYTES, GREETING, hostedOptions, PLACEHOLDER, PROMPTS, selfHostedOptions, sharedOptions, THEME, THREAD_ITEM_ACTIONS } from "../../../src/app/static/chatkit-options.js";

test("both modes share the look, the start screen, the history actions and feedback and retry", () => {
  const shared = sharedOptions();
  assert.deepEqual(Object.keys(shared).sort(), ["history", "startScreen", "theme", "threadItemActions"]);
  assert.equal(shared.theme, THEME);
  assert.deepEqual(shared.startScreen, { greeting: GREETING, prompts: PROMPTS });
  assert.deepEqual(shared.history, { enabled: true, showDelete: true, showRename: true });
  assert.deepEqual({ ...shared.threadItemActions }, { ...THREAD_ITEM_ACTIONS });
  const hosted = hostedOptions({ getClientSecret: async () => "s" }, () => {});
  const selfHosted = selfHostedOptions({ fetch: async () => new Response() }, "http://127.0.0.1:8000/", { domainKey: "k" });
  for (const options of [hosted, selfHosted]) {
    for (const [key, value] of Object.entries(shared)) assert.deepEqual(options[key], value, key);
  }
});

test("self-hosted: TaskPilot's /chatkit through the page's fetch, which says it answers get_time_zone", async () => {
  const calls = [];
  const api = { fetch: async (input, init) => (calls.push({ input, init }), new Response("{}")) };
  const composer = { tools: [{ id: "add_task", label: "Add task", icon: "plus", placeholder: "What needs doing?" }], models: [] };
  const entities = { onTagSearch: async () => [] };
  const attachments = { max_bytes: 2048, accept: { "image/png": [".png"], "text/markdown": [".md", ".markdown"] } };
  const options = selfHostedOptions(api, "https://tasks.example.com/app/", { domainKey: "domain_pk_x", dictation: true, composer, attachments, entities });
  assert.equal(options.api.url, "https://tasks.example.com/chatkit");
  assert.equal(options.api.domainKey, "domain_pk_x");
  assert.deepEqual(options.api.uploadStrategy, { type: "two_phase" });
  assert.equal(options.onClientTool, answerClientTool);
  assert.equal(options.entities, entities);
  assert.deepEqual(options.composer, {
    placeholder: PLACEHOLDER,
    attachments: { enabled: true, maxCount: 5, maxSize: 2048, accept: { "image/png": [".png"], "text/markdown": [".md", ".markdown"] } },
    dictation: { enabled: true },
    tools: [{ id: "add_task", label: "Add task", icon: "plus", placeholderOverride: "What needs doing?" }],
  });
  await options.api.fetch("https://tasks.example.com/chatkit", { method: "POST", headers: { "Content-Type": "application/json" } });
  assert.equal(calls.length, 1);
  assert.equal(calls[0].init.method, "POST");
  assert.equal(calls[0].init.headers.get("ChatKit-Client-Tools"), "get_time_zone");
  assert.equal(calls[0].init.headers.get("Content-Type"), "application/json");
});

test("self-hosted without dictation, composer choices or entities leaves them off", () => {
  const options = selfHostedOptions({ fetch: async () => new Response() }, "http://127.0.0.1:8000/", { domainKey: "k" });
  assert.deepEqual(options.composer.dictation, { enabled: false });
  assert.ok(!("tools" in options.composer) && !("models" in options.composer));
  assert.ok(!("entities" in options));
});

test("attachments: the server's ATTACHMENT_MAX_BYTES and allowed types; without them its default size and any file", () => {
  const server = { max_bytes: 1_000_000, accept: { "application/pdf": [".pdf"], "text/plain": [".txt", ".text", ".log"] } };
  const built = composerAttachments(server);
  assert.deepEqual(built, { enabled: true, maxCount: 5, maxSize: 1_000_000, accept: { "application/pdf": [".pdf"], "text/plain": [".txt", ".text", ".log"] } });
  built.accept["text/plain"].push(".exe");
  assert.deepEqual(server.accept["text/plain"], [".txt", ".text", ".log"], "the health document is not changed");
  const fallback = { enabled: true, maxCount: 5, maxSize: DEFAULT_ATTACHMENT_MAX_BYTES };
  assert.equal(DEFAULT_ATTACHMENT_MAX_BYTES, 10 * 1024 * 1024);
  for (const missing of [null, undefined]) assert.deepEqual(composerAttachments(missing), fallback);
  assert.deepEqual(composerAttachments({ max_bytes: 5, accept: {} }), { enabled: true, maxCount: 5, maxSize: 5 });
  const options = selfHostedOptions({ fetch: async () => new Response() }, "http://127.0.0.1:8000/", { domainKey: "k" });
  assert.deepEqual(options.composer.attachments, fallback);
});

test("hosted: secrets from TaskPilot's provider; a failure is reported and still thrown to ChatKit", async () => {
  const asked = [];
  const failures = [];
  const secrets = {
    getClientSecret: async (current) => {
      asked.push(current);
      if (current === "expired") throw new Error("refresh refused");
      return "ek_new";
    },
  };
  const options = hostedOptions(secrets, (error) => failures.push(error.message));
  assert.deepEqual(Object.keys(options.api), ["getClientSecret"]);
  assert.deepEqual(options.composer, { placeholder: PLACEHOLDER });
  assert.ok(!("onClientTool" in options) && !("entities" in options));
  assert.equal(await options.api.getClientSecret(null), "ek_new");
  await assert.rejects(options.api.getClientSecret("expired"), /refresh refused/);
  assert.deepEqual(asked, [null, "expired"]);
  assert.deepEqual(failures, ["refresh refused"]);
});

test("a tasks.changed effect's ids: its strings, or none", () => {
  assert.deepEqual(changedTaskIds({ ids: ["t-1", 7, null, "t-2"] }), ["t-1", "t-2"]);
  assert.deepEqual(changedTaskIds({ ids: "t-1" }), []);
  assert.deepEqual(changedTaskIds({}), []);
  assert.deepEqual(changedTaskIds(undefined), []);
});
