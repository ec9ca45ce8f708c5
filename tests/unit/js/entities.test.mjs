// The rules of src/app/static/entities.js under Node's own test runner: how a message with chosen
// @-tags becomes ChatKit content, tasks as entities, and the tag search's request.
// Run: node --test tests/unit/js/ (tests/unit/test_hosted_session_js.py runs it under pytest).

import assert from "node:assert/strict";
import { test } from "node:test";

import { askAboutTask, entitySources, entityTaskId, previewTaskEntity, searchTaskEntities, taggedContent, taskEntities, taskEntity, taskPreview } from "../../../src/app/static/entities.js";

const milk1 = { id: "0193a000-0000-7000-8000-000000000001", text: "Buy milk", data: { type: "task", task_id: "0193a000-0000-7000-8000-000000000001", number: "1" } };
const milk2 = { id: "0193a000-0000-7000-8000-000000000002", text: "Buy milk", data: { type: "task", task_id: "0193a000-0000-7000-8000-000000000002", number: "2" } };
const rent = { id: "0193a000-0000-7000-8000-000000000003", text: "Pay rent", data: {} };

const tagPart = (tag) => ({ type: "input_tag", id: tag.id, text: tag.text, data: tag.data, interactive: true });

test("a message with a chosen tag is split into text and input_tag parts", () => {
  assert.deepEqual(taggedContent("mark @Buy milk done", [milk2]), [
    { type: "input_text", text: "mark " },
    tagPart(milk2),
    { type: "input_text", text: " done" },
  ]);
});

test("two tags of the same title are matched to their mentions in the order chosen", () => {
  assert.deepEqual(taggedContent("@Buy milk and @Buy milk", [milk2, milk1]), [tagPart(milk2), { type: "input_text", text: " and " }, tagPart(milk1)]);
});

test("a tag whose mention was edited away is dropped, and a mention without a tag stays text", () => {
  assert.deepEqual(taggedContent("pay @Pay rnt and @Buy milk", [rent, milk1]), [{ type: "input_text", text: "pay @Pay rnt and " }, tagPart(milk1)]);
  assert.deepEqual(taggedContent("@Buy milk twice: @Buy milk", [milk1]), [tagPart(milk1), { type: "input_text", text: " twice: @Buy milk" }]);
});

test("a task is an interactive entity whose id is the task's id", () => {
  const task = { id: "t-1", number: 7, title: "Call mum", completed: true };
  assert.deepEqual(taskEntity(task), {
    id: "t-1",
    title: "Call mum",
    group: "Done",
    icon: "check-circle-filled",
    interactive: true,
    data: { type: "task", task_id: "t-1", number: "7" },
  });
  assert.equal(entityTaskId({ id: "other", data: { task_id: "t-1" } }), "t-1");
  assert.equal(entityTaskId({ id: "t-2" }), "t-2");
});

test("the tag search asks the task API with q, and for recent open tasks when empty", async () => {
  const asked = [];
  const listTasks = async (query) => (asked.push(query), { items: [{ id: "t-1", number: 1, title: "Buy milk", completed: false }] });
  const found = await searchTaskEntities(listTasks, "  milk ");
  assert.equal(found[0].id, "t-1");
  await searchTaskEntities(listTasks, "");
  await searchTaskEntities(listTasks, "x".repeat(250));
  assert.deepEqual(asked, [
    { status: "all", sort: "updated_at", limit: 8, q: "milk" },
    { status: "open", sort: "updated_at", limit: 8 },
    { status: "all", sort: "updated_at", limit: 8, q: "x".repeat(200) },
  ]);
  const focused = [];
  taskEntities(listTasks, (id) => focused.push(id)).onClick({ id: "t-1", data: { task_id: "t-1" } });
  assert.deepEqual(focused, ["t-1"]);
});

test("an answer's entity sources are listed once each, in order", () => {
  const source = (id) => ({ type: "annotation", index: 3, source: { type: "entity", id, title: `#${id}` } });
  const item = { content: [{ text: "a", annotations: [source("1"), source("2")] }, { text: "b", annotations: [source("1"), { source: { type: "url", url: "x" } }] }] };
  assert.deepEqual(entitySources(item).map((s) => s.id), ["1", "2"]);
});

const task = { id: milk1.id, number: 1, title: "Buy milk", completed: false, priority: "high", due_date: "2026-12-24" };

test("a task's preview is a Basic widget: number, title, open or done, priority, due date", () => {
  const preview = taskPreview(task);
  assert.equal(preview.type, "Basic");
  const [heading, facts] = preview.children;
  assert.deepEqual(heading.children.map((c) => c.value), ["#1", "Buy milk"]);
  assert.equal(heading.children[1].lineThrough, false);
  assert.deepEqual(facts.children.map((c) => c.label ?? c.value), ["Open", "high priority", "Due 2026-12-24"]);
  const done = taskPreview({ ...task, completed: true, priority: "weird", due_date: null });
  assert.deepEqual(done.children[1].children.map((c) => c.label ?? c.value), ["Done", "medium priority", "No due date"]);
  assert.equal(done.children[0].children[1].lineThrough, true);
});

test("a preview asks for the entity's task; none when it is gone, not the user's, or unreadable", async () => {
  const asked = [];
  const getTask = async (id) => {
    asked.push(id);
    if (id === milk1.id) return task;
    if (id === "broken") throw new Error("HTTP 500");
    return null;
  };
  assert.deepEqual(await previewTaskEntity(getTask, { id: "x", title: "Buy milk", data: { task_id: milk1.id } }), { preview: taskPreview(task) });
  assert.deepEqual(await previewTaskEntity(getTask, { id: "someone-elses", title: "?" }), { preview: null });
  assert.deepEqual(await previewTaskEntity(getTask, { id: "broken", title: "?" }), { preview: null });
  assert.deepEqual(asked, [milk1.id, "someone-elses", "broken"]);
  const entities = taskEntities(async () => ({ items: [] }), () => {}, getTask);
  assert.deepEqual(await entities.onRequestPreview({ id: milk1.id, title: "Buy milk" }), { preview: taskPreview(task) });
  assert.equal("onRequestPreview" in taskEntities(async () => ({ items: [] }), () => {}), false);
});

test("'Ask about this task' fills the composer with the task tagged, or named in hosted mode", () => {
  assert.deepEqual(askAboutTask(task), {
    content: [{ type: "input_tag", id: milk1.id, text: "Buy milk", data: { type: "task", task_id: milk1.id, number: "1" }, interactive: true }, { type: "input_text", text: " " }],
  });
  assert.deepEqual(askAboutTask(task, { tagged: false }), { text: 'About task #1 "Buy milk": ' });
});
