"""Hover previews, "/" commands, "Ask about this task" and a closed conversation (issue 34) in headless
Chromium against a live server.

For ChatKit's web component (the stand-in for the CDN script, tests/support/chatkit_standin.js) what
is checked is what the page gives it and asks of it: `entities.onRequestPreview` answers a `Basic`
widget of the user's task from GET /api/tasks/{id} (none for another user's or a deleted task),
`commands` lists the server's composer tools as `/add`, `/find`, `/today`, `/summary` and selecting
one calls `setComposerValue({selectedToolId})`, and the task panel's "Ask" calls `setComposerValue`
with the task tagged, whose content the server then reads as that task. How the real component
shows a preview, its "/" menu or a prefilled tag is not checked here.

The built-in console: typed `/add buy milk`, `/today` and `/summary` are sent with the same tool
choices; "Ask" prefills the task's tag; a conversation the server closes at QUOTA_ITEMS_PER_THREAD
shows its reason with the composer disabled (and `locked`, which the server never sets, likewise
from a `thread.updated` event).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import httpx

from app.agents.tools import COMPOSER_TOOLS
from tests.support.auth import bearer
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

QUOTA = 4
CLOSED_REASON = f"This conversation has reached the limit of {QUOTA} items: start a new one."


def call_async(driver: Any, script: str, *args: Any) -> Any:
    """Runs `script` (an expression giving a promise, with `args` as `a`) and returns what it resolves."""
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1]; const a = arguments[0];"
        f"Promise.resolve().then(() => {script}).then(done, (e) => done({{error: String(e.message || e)}}));",
        list(args),
    )


def update_task(server: LiveServer, user: str, task_id: str, **fields: Any) -> dict[str, Any]:
    response = httpx.patch(f"{server.base_url}/api/tasks/{task_id}", json=fields, headers=bearer(user, time_zone="UTC"))
    response.raise_for_status()
    updated: dict[str, Any] = response.json()
    return updated


def preview_expected(task: dict[str, Any], *, done: bool, priority: str, due: str | None) -> dict[str, Any]:
    colour = {"high": "danger", "medium": "secondary", "low": "info"}[priority]
    return {
        "type": "Basic",
        "direction": "col",
        "gap": 2,
        "padding": 3,
        "children": [
            {
                "type": "Row",
                "gap": 2,
                "align": "baseline",
                "children": [
                    {"type": "Caption", "value": f"#{task['number']}", "color": "secondary"},
                    {"type": "Text", "value": task["title"], "weight": "semibold", "lineThrough": done, "maxLines": 2},
                ],
            },
            {
                "type": "Row",
                "gap": 2,
                "align": "center",
                "wrap": "wrap",
                "children": [
                    {
                        "type": "Badge",
                        "label": "Done" if done else "Open",
                        "color": "success" if done else "secondary",
                        "variant": "soft",
                    },
                    {"type": "Badge", "label": f"{priority} priority", "color": colour, "variant": "outline"},
                    {"type": "Caption", "value": f"Due {due}" if due else "No due date"},
                ],
            },
        ],
    }


def test_chatkit_gets_previews_commands_and_the_panels_ask(
    live_server_factory: Callable[..., LiveServer], browser: Callable[..., Any], fake_cdn: int
) -> None:
    server = live_server_factory()
    milk = add(server, "alice", "Buy milk")
    milk = update_task(server, "alice", milk["id"], priority="high", due_date="2026-12-24")
    rent = add(server, "alice", "Pay rent")
    gone = add(server, "alice", "Old errand")
    httpx.delete(f"{server.base_url}/api/tasks/{gone['id']}", headers=bearer("alice")).raise_for_status()
    bobs = add(server, "bob", "Buy milk for bob")
    driver = browser(cdn_rules(fake_cdn), insecure_tls=True)
    driver.get(f"{server.base_url}/")
    sign_in(driver, "alice")
    assert driver.find_element("id", "taskpilot-app").get_attribute("data-ui") == "chatkit"

    # Hover previews: the user's task as a Basic widget; another user's or a deleted one: none.
    (entity,) = call_async(driver, "window.__chatkit.options.entities.onTagSearch('milk')")
    preview = call_async(driver, "window.__chatkit.options.entities.onRequestPreview(a[0])", entity)
    assert preview == {"preview": preview_expected(milk, done=False, priority="high", due="2026-12-24")}
    httpx.post(f"{server.base_url}/api/tasks/{rent['id']}/complete", headers=bearer("alice")).raise_for_status()
    rent_entity = {"id": rent["id"], "title": "Pay rent", "data": {"task_id": rent["id"]}}
    done = call_async(driver, "window.__chatkit.options.entities.onRequestPreview(a[0])", rent_entity)
    assert done == {"preview": preview_expected(rent, done=True, priority="medium", due=None)}
    for other in (bobs, gone, {"id": "not-a-task-id", "title": "?"}):
        entity_of = {"id": other["id"], "title": other["title"], "data": {"task_id": other["id"]}}
        assert call_async(driver, "window.__chatkit.options.entities.onRequestPreview(a[0])", entity_of) == {
            "preview": None
        }

    # "/" commands: the server's composer tools; choosing one selects it in ChatKit's composer.
    commands = driver.execute_script("const c = window.__chatkit.options.commands; return {enabled: c.enabled}")
    assert commands == {"enabled": True}
    listed = call_async(driver, "window.__chatkit.options.commands.onSearch('')")
    assert listed == [
        {"id": tool.id, "label": f"/{tool.command}", "description": tool.label, "icon": tool.icon}
        for tool in COMPOSER_TOOLS
    ]
    assert [c["label"] for c in listed] == ["/add", "/find", "/today", "/summary"]
    assert [c["id"] for c in call_async(driver, "window.__chatkit.options.commands.onSearch('/to')")] == ["today"]
    assert call_async(driver, "window.__chatkit.options.commands.onSearch('zzz')") == []
    call_async(driver, "window.__chatkit.options.commands.onSelect(a[0])", listed[2])
    call_async(driver, "window.__chatkit.options.commands.onSelect({id: 'delete_everything', label: '/x'})")
    assert driver.execute_script("return window.__chatkit.composerValues") == [{"selectedToolId": "today"}]

    # The panel's "Ask": the composer gets the task tagged, then focus.
    ask = next(el for el in css(driver, ".tp-task-ask") if el.get_attribute("aria-label").endswith("Buy milk"))
    ask.click()
    wait_for(driver, lambda d: len(d.execute_script("return window.__chatkit.composerValues")) == 2, "the prefill")
    asked = driver.execute_script("return window.__chatkit.composerValues[1]")
    assert asked == {
        "content": [
            {
                "type": "input_tag",
                "id": milk["id"],
                "text": "Buy milk",
                "data": {"type": "task", "task_id": milk["id"], "number": str(milk["number"])},
                "interactive": True,
            },
            {"type": "input_text", "text": " "},
        ]
    }
    wait_for(driver, lambda d: d.execute_script("return window.__chatkit.composerFocused") == 1, "the focus")
    # What the composer would send with that value names exactly that task to the server.
    sent = call_async(
        driver, "window.__chatkit.send([...a[0].content, {type: 'input_text', text: ' mark done'}])", asked
    )
    assert sent["status"] == 200 and "error" not in sent["events"], sent
    assert {t["id"]: t["completed"] for t in api_tasks(server, "alice")}[milk["id"]] is True
    assert not severe_console_errors(driver, 404)  # the previews asked for tasks that are not alice's


def test_the_console_takes_slash_commands_and_asks_about_a_task(
    live_server_factory: Callable[..., LiveServer], browser: Callable[..., Any]
) -> None:
    server = live_server_factory()
    today = dt.datetime.now(dt.UTC).date()
    due = add(server, "dora", "Water the plants")
    update_task(server, "dora", due["id"], due_date=today.isoformat())
    later = add(server, "dora", "Book the dentist")
    update_task(server, "dora", later["id"], due_date=(today + dt.timedelta(days=5)).isoformat())
    driver = browser()
    driver.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": "UTC"})
    driver.get(f"{server.base_url}/?ui=console")
    sign_in(driver, "dora")
    box = css(driver, ".tp-input")[0]

    def answered(count: int) -> None:
        wait_for(driver, lambda d: len(texts(d, ".tp-msg--assistant")) >= count, f"answer {count}")
        wait_for(driver, lambda d: not css(d, ".tp-console--busy"), "the stream to end")

    box.send_keys("/add buy milk\n")
    answered(1)
    assert "Buy milk" in [t["title"] for t in api_tasks(server, "dora")]

    # A bare /add has nothing to add yet: it chooses the tool and waits for the words.
    box.send_keys("/add\n")
    assert box.get_attribute("value") == ""
    assert css(driver, ".tp-choice--tool")[0].get_attribute("value") == "add_task"
    assert box.get_attribute("placeholder") == COMPOSER_TOOLS[0].placeholder
    box.send_keys("call mum\n")
    answered(2)

    box.send_keys("/today\n")
    answered(3)
    widget = css(driver, ".tp-widget")[-1].text
    assert "Water the plants" in widget and "Book the dentist" not in widget and "Buy milk" not in widget

    box.send_keys("/summary\n")
    answered(4)
    assert texts(driver, ".tp-msg--assistant")[-1].startswith("You have 4 open")

    sent = driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const app = document.getElementById('taskpilot-app').taskpilot;
        const threadId = document.querySelector('.tp-thread--active').dataset.threadId;
        app.api.fetch(app.api.url('/chatkit'), {method: 'POST', headers: {'Content-Type': 'application/json'},
          body: JSON.stringify({type: 'items.list', params: {thread_id: threadId, order: 'asc'}})})
          .then((r) => r.json()).then((page) => done(page.data.filter((i) => i.type === 'user_message')
            .map((i) => [i.content.map((c) => c.text).join(''), (i.inference_options.tool_choice || {}).id])));
        """
    )
    assert sent == [["buy milk", "add_task"], ["call mum", "add_task"], ["Due today", "today"], ["Summary", "summary"]]
    assert sorted(t["title"] for t in api_tasks(server, "dora")) == [
        "Book the dentist",
        "Buy milk",
        "Call mum",
        "Water the plants",
    ]

    # "Ask about this task" prefills its tag; the message is about exactly that task.
    ask = next(el for el in css(driver, ".tp-task-ask") if el.get_attribute("aria-label").endswith("Book the dentist"))
    ask.click()
    assert box.get_attribute("value") == "@Book the dentist "
    assert driver.execute_script("return document.activeElement") == box
    box.send_keys(" mark done\n")
    answered(5)
    assert {t["id"]: t["completed"] for t in api_tasks(server, "dora")}[later["id"]] is True
    mentions = css(driver, ".tp-msg--user .tp-mention")
    assert [(m.text, m.get_attribute("data-task-id")) for m in mentions] == [("@Book the dentist", later["id"])]
    screenshot(driver, "console-commands.png")
    assert not css(driver, ".tp-banner--error")
    assert not severe_console_errors(driver)


def test_the_console_shows_a_closed_or_locked_conversation_and_takes_no_message(
    live_server_factory: Callable[..., LiveServer], browser: Callable[..., Any]
) -> None:
    server = live_server_factory({"QUOTA_ITEMS_PER_THREAD": str(QUOTA), "RATE_LIMIT_CHAT_PER_MINUTE": "0"})
    driver = browser()
    driver.get(f"{server.base_url}/?ui=console")
    sign_in(driver, "eve")
    box = css(driver, ".tp-input")[0]
    status = css(driver, ".tp-thread-status")[0]
    assert not status.is_displayed()
    for count in range(1, QUOTA + 1):
        if css(driver, ".tp-console--closed"):
            break
        box.send_keys("help\n")
        wait_for(driver, lambda d, n=count: len(texts(d, ".tp-msg--assistant")) >= n, f"answer {count}")
        wait_for(driver, lambda d: not css(d, ".tp-console--busy"), "the stream to end")
    wait_for(driver, lambda d: css(d, ".tp-console--closed"), "the conversation to close")
    assert status.is_displayed() and CLOSED_REASON in status.text and "closed" in status.text
    assert not box.is_enabled() and not css(driver, ".tp-send")[0].is_enabled()
    screenshot(driver, "console-thread-closed.png")

    # Opened again (a reload), it is still closed; a new chat takes messages.
    driver.refresh()
    wait_for(driver, lambda d: css(d, ".tp-console--closed"), "the closed conversation after a reload")
    assert CLOSED_REASON in css(driver, ".tp-thread-status")[0].text
    next(el for el in css(driver, ".tp-thread-status button")).click()
    box = css(driver, ".tp-input")[0]
    assert box.is_enabled() and not css(driver, ".tp-thread-status")[0].is_displayed()
    box.send_keys("help\n")
    wait_for(driver, lambda d: len(texts(d, ".tp-msg--assistant")) == 1, "the new chat's answer")
    wait_for(driver, lambda d: not css(d, ".tp-console--busy"), "the stream to end")
    assert box.is_enabled()

    # `locked` (which this server never sets) reads the same way, from the event ChatKit would get.
    driver.execute_script(
        """
        const chat = document.getElementById('taskpilot-app').taskpilot.chat;
        const id = document.querySelector('.tp-thread--active').dataset.threadId;
        chat.handleEvent({type: 'thread.updated', thread: {id, title: 'Locked', created_at: new Date().toISOString(),
          status: {type: 'locked', reason: 'An operator locked this conversation.'}}});
        """
    )
    locked = css(driver, ".tp-thread-status")[0]
    assert locked.is_displayed() and locked.get_attribute("data-status") == "locked"
    assert "locked" in locked.text and "An operator locked this conversation." in locked.text
    assert not css(driver, ".tp-input")[0].is_enabled()
    assert not severe_console_errors(driver, 429)
