"""@-tagging tasks in a real headless Chromium against a live server.

The built-in console: typing "@milk" lists the user's matching tasks (GET /api/tasks?q=, never
another user's), choosing one sends the message with an `input_tag` for exactly that task, and
the answer's entity annotations become links that focus the task in the panel. For ChatKit's web
component (a stand-in for the CDN script, tests/support/chatkit_standin.js) the test checks the
`entities` option the page gives it: `onTagSearch` answers with the user's tasks as entities and
`onClick` focuses the task in the panel, and that a tagged message the component sends through
the page's `api.fetch` completes exactly that task with an annotated answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.support.browser import api_add_task as add
from tests.support.browser import (
    api_tasks,
    cdn_rules,
    css,
    screenshot,
    severe_console_errors,
    sign_in,
    texts,
    wait_for,
)
from tests.support.servers import LiveServer


def focused_task(driver: Any) -> str | None:
    ids: list[str] = [el.get_attribute("data-task-id") for el in css(driver, ".tp-task--focused")]
    return ids[0] if len(ids) == 1 else None


def test_the_console_tags_a_task_from_a_picker_and_links_the_answer_to_the_panel(
    live_server_factory: Callable[..., LiveServer], browser: Callable[..., Any]
) -> None:
    server = live_server_factory()
    first = add(server, "alice", "Buy milk")
    second = add(server, "alice", "Buy milk")
    add(server, "alice", "Pay rent")
    add(server, "bob", "Buy milk for bob")
    driver = browser()
    driver.get(f"{server.base_url}/?ui=console")
    sign_in(driver, "alice")

    box = css(driver, ".tp-input")[0]
    box.send_keys("mark @milk")
    wait_for(driver, lambda d: len(css(d, ".tp-tag-option")) == 2, "the picker to list alice's two milk tasks")
    offered = {el.get_attribute("data-task-id") for el in css(driver, ".tp-tag-option")}
    assert offered == {first["id"], second["id"]}  # bob's "Buy milk for bob" is not offered
    screenshot(driver, "entity-tags-picker.png")
    (option,) = [el for el in css(driver, ".tp-tag-option") if el.get_attribute("data-task-id") == second["id"]]
    option.click()
    assert not css(driver, ".tp-tag-option")
    assert box.get_attribute("value") == "mark @Buy milk "
    box.send_keys("done")
    screenshot(driver, "entity-tags-console-typed.png")
    box.send_keys("\n")

    wait_for(driver, lambda d: any(f"#{second['number']}" in t for t in texts(d, ".tp-msg--assistant")), "the answer")
    wait_for(driver, lambda d: not css(d, ".tp-console--busy"), "the stream to end")
    states = {task["id"]: task["completed"] for task in api_tasks(server, "alice")}
    assert states[second["id"]] is True and states[first["id"]] is False

    # The message shows its tag; the answer links the task it names; a click focuses it in the
    # panel (done now, so the panel switches to "All" to show it).
    mentions = css(driver, ".tp-msg--user .tp-mention")
    assert [(m.text, m.get_attribute("data-task-id")) for m in mentions] == [("@Buy milk", second["id"])]
    (source,) = css(driver, ".tp-msg--assistant .tp-source")
    assert source.get_attribute("data-task-id") == second["id"]
    assert source.text == f"#{second['number']} Buy milk"
    source.click()
    wait_for(driver, lambda d: focused_task(d) == second["id"], "the panel to focus the tagged task")
    assert driver.execute_script("return document.activeElement.dataset.taskId") == second["id"]
    mentions[0].click()
    wait_for(driver, lambda d: focused_task(d) == second["id"], "the mention to focus the task too")
    screenshot(driver, "entity-tags-console.png")
    assert not css(driver, ".tp-banner--error")
    assert not severe_console_errors(driver)


def test_the_chatkit_component_gets_tag_search_and_click_handlers(
    live_server_factory: Callable[..., LiveServer], browser: Callable[..., Any], fake_cdn: int
) -> None:
    server = live_server_factory()
    milk = add(server, "alice", "Buy milk")
    add(server, "alice", "Pay rent")
    add(server, "bob", "Buy milk for bob")
    driver = browser(cdn_rules(fake_cdn), insecure_tls=True)
    driver.get(f"{server.base_url}/")
    sign_in(driver, "alice")
    assert driver.find_element("id", "taskpilot-app").get_attribute("data-ui") == "chatkit"
    entities = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "window.__chatkit.options.entities.onTagSearch('milk').then(done, (e) => done(String(e)));"
    )
    assert entities == [
        {
            "id": milk["id"],
            "title": "Buy milk",
            "group": "Open",
            "icon": "check-circle",
            "interactive": True,
            "data": {"type": "task", "task_id": milk["id"], "number": str(milk["number"])},
        }
    ]
    everything = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "window.__chatkit.options.entities.onTagSearch('').then(done, (e) => done(String(e)));"
    )
    assert [e["title"] for e in everything] == ["Pay rent", "Buy milk"]  # recently changed first, alice's only

    driver.execute_script("window.__chatkit.options.entities.onClick(arguments[0])", entities[0])
    wait_for(driver, lambda d: focused_task(d) == milk["id"], "the panel to focus the clicked task")

    # What the composer sends for a chosen entity reaches the server through the page's `api.fetch`:
    # exactly that task is completed, and the answer's annotation names it.
    sent = driver.execute_async_script(
        "const done = arguments[arguments.length - 1]; const e = arguments[0];"
        "const tag = {type: 'input_tag', id: e.id, text: e.title, data: e.data, interactive: true};"
        "window.__chatkit.send([{type: 'input_text', text: 'mark '}, tag, {type: 'input_text', text: ' done'}])"
        ".then((r) => done({...r, annotations: window.__chatkit.annotations}), (e) => done(String(e)));",
        entities[0],
    )
    assert sent["status"] == 200 and "error" not in sent["events"], sent
    assert [a["source"]["id"] for a in sent["annotations"]] == [milk["id"]]
    assert {t["id"]: t["completed"] for t in api_tasks(server, "alice")}[milk["id"]] is True
    assert not severe_console_errors(driver)
