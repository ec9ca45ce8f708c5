// The rules of src/app/static/chatkit-options.js under Node's own test runner: what the page at `/`
// and examples/react give ChatKit for the client tool, the item actions and the composer choices.
// Run: node --test tests/unit/js/ (tests/unit/test_hosted_session_js.py runs it under pytest).

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  afterSyncActions,
  answerClientTool,
  browserTimeZone,
  CLIENT_TOOLS_HEADER,
  composerChoices,
  composerCommands,
  isSyncAction,
  THREAD_ITEM_ACTIONS,
  typedCommand,
  withClientTools,
} from "../../../src/app/static/chatkit-options.js";

test("get_time_zone is answered with the runtime's IANA zone; any other client tool is refused", () => {
  assert.deepEqual(answerClientTool({ name: "get_time_zone", params: {} }), { time_zone: Intl.DateTimeFormat().resolvedOptions().timeZone });
  assert.equal(browserTimeZone(), Intl.DateTimeFormat().resolvedOptions().timeZone);
  assert.throws(() => answerClientTool({ name: "launch_rockets", params: {} }), /no client tool named launch_rockets/);
});

test("ChatKit's requests say the page answers get_time_zone, keeping their own headers", () => {
  assert.equal(CLIENT_TOOLS_HEADER, "ChatKit-Client-Tools");
  const init = withClientTools("https://t.example/chatkit", { method: "POST", headers: { "Content-Type": "application/json" } });
  assert.equal(init.method, "POST");
  assert.equal(init.headers.get("ChatKit-Client-Tools"), "get_time_zone");
  assert.equal(init.headers.get("Content-Type"), "application/json");
  const request = new Request("https://t.example/chatkit", { headers: { "X-Request-ID": "r1" } });
  const fromRequest = withClientTools(request, undefined);
  assert.equal(fromRequest.headers.get("X-Request-ID"), "r1");
  assert.equal(fromRequest.headers.get("ChatKit-Client-Tools"), "get_time_zone");
  // A caller's own list is kept.
  assert.equal(withClientTools("u", { headers: { "ChatKit-Client-Tools": "x" } }).headers.get("ChatKit-Client-Tools"), "x");
});

test("feedback and retry are on, and the shared value cannot be changed by a caller", () => {
  assert.deepEqual({ ...THREAD_ITEM_ACTIONS }, { feedback: true, retry: true });
  assert.ok(Object.isFrozen(THREAD_ITEM_ACTIONS));
});

test("health's composer choices become ChatKit's composer.tools and composer.models", () => {
  const composer = {
    tools: [{ id: "add_task", label: "Add task", icon: "plus", placeholder: "What needs doing?" }],
    models: [
      { id: "gpt-5-mini", label: "gpt-5-mini", default: true },
      { id: "gpt-5", label: "gpt-5", default: false },
    ],
  };
  assert.deepEqual(composerChoices(composer), {
    tools: [{ id: "add_task", label: "Add task", icon: "plus", placeholderOverride: "What needs doing?" }],
    models: [
      { id: "gpt-5-mini", label: "gpt-5-mini", default: true },
      { id: "gpt-5", label: "gpt-5", default: false },
    ],
  });
});

test("choices the server does not offer are left out, not sent empty", () => {
  assert.deepEqual(composerChoices({ tools: [], models: [] }), {});
  assert.deepEqual(composerChoices(undefined), {});
  assert.deepEqual(Object.keys(composerChoices({ tools: [{ id: "summary", label: "Summary", icon: "chart" }], models: [] })), ["tools"]);
});

test("a synchronous widget action's answer refreshes the task panel; nothing else does", async () => {
  const sync = JSON.stringify({ type: "threads.sync_custom_action", params: { thread_id: "t", item_id: "w", action: { type: "task.complete", payload: { id: "1" } } } });
  const streamed = JSON.stringify({ type: "threads.custom_action", params: { thread_id: "t", item_id: "w", action: { type: "task.delete", payload: { id: "1" } } } });
  const quoting = JSON.stringify({ type: "threads.add_user_message", params: { input: { content: [{ type: "input_text", text: "what is threads.sync_custom_action?" }] } } });
  assert.equal(isSyncAction(sync), true);
  assert.equal(isSyncAction(streamed), false);
  assert.equal(isSyncAction(quoting), false);
  assert.equal(isSyncAction("{not json threads.sync_custom_action"), false);
  assert.equal(isSyncAction(undefined), false);

  let refreshed = 0;
  let status = 200;
  const sent = [];
  const fetchImpl = async (input, init) => {
    sent.push([input, init]);
    return new Response("{}", { status });
  };
  const wrapped = afterSyncActions(fetchImpl, () => refreshed++);
  for (const body of [sync, streamed, quoting]) await wrapped("https://t.example/chatkit", { method: "POST", body });
  assert.equal(refreshed, 1);
  assert.equal(sent.length, 3); // every request still goes out, as given
  status = 400; // refused: nothing changed
  await wrapped("https://t.example/chatkit", { method: "POST", body: sync });
  assert.equal(refreshed, 1);
  assert.equal(afterSyncActions(fetchImpl, null), fetchImpl);
});

const SERVER_TOOLS = {
  tools: [
    { id: "add_task", label: "Add task", icon: "plus", placeholder: "What needs doing?", command: "add" },
    { id: "today", label: "Due today", icon: "calendar", placeholder: "Send", command: "today" },
    { id: "summary", label: "Summary", icon: "chart", placeholder: "Send", command: "summary" },
  ],
};

test("the composer's tools are '/' commands; choosing one selects that tool, and nothing else", async () => {
  const selected = [];
  const commands = composerCommands(SERVER_TOOLS, (id) => selected.push(id));
  assert.equal(commands.enabled, true);
  assert.deepEqual(await commands.onSearch(""), [
    { id: "add_task", label: "/add", description: "Add task", icon: "plus" },
    { id: "today", label: "/today", description: "Due today", icon: "calendar" },
    { id: "summary", label: "/summary", description: "Summary", icon: "chart" },
  ]);
  assert.deepEqual((await commands.onSearch("/su")).map((c) => c.id), ["summary"]);
  assert.deepEqual((await commands.onSearch("due")).map((c) => c.id), ["today"]);
  assert.deepEqual(await commands.onSearch("zzz"), []);
  await commands.onSelect({ id: "today", label: "/today" });
  await commands.onSelect({ id: "delete_everything", label: "/x" });
  assert.deepEqual(selected, ["today"]);
  assert.equal(composerCommands({ tools: [] }, () => {}), null);
  assert.equal(composerCommands(null, () => {}), null);
});

test("a typed '/' command names its tool and the words after it; other text is no command", () => {
  assert.deepEqual(typedCommand("/add buy milk tomorrow", SERVER_TOOLS), { toolId: "add_task", label: "Add task", words: "buy milk tomorrow" });
  assert.deepEqual(typedCommand("  /TODAY ", SERVER_TOOLS), { toolId: "today", label: "Due today", words: "" });
  assert.deepEqual(typedCommand("/summary\nplease", SERVER_TOOLS), { toolId: "summary", label: "Summary", words: "please" });
  assert.equal(typedCommand("/launch rockets", SERVER_TOOLS), null);
  assert.equal(typedCommand("buy milk /add", SERVER_TOOLS), null);
  assert.equal(typedCommand("/add buy milk", null), null);
});
