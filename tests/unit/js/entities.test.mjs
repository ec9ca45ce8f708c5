// The rules of src/app/static/entities.js under Node's own test runner: how a message with chosen
// @-tags becomes ChatKit content, tasks as entities, and the tag search's request.
// Run: node --test tests/unit/js/ (tests/unit/test_hosted_session_js.py runs it under pytest).

import assert from "node:assert/strict";
import { test } from "node:test";

import { entitySources, entityTaskId, searchTaskEntities, taggedContent, taskEntities, taskEntity } from "../../../src/app/static/entities.js";

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
