"""The task widgets in the built-in console, in a real headless Chromium against a live server: the
ListView list, Delete's confirm dialog (Card confirm/cancel), the choice for several matches, and the
in-place edit Form whose values travel in the submit action."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from app.http.auth import mint_dev_token
from app.settings import Settings
from tests.support.browser import api_tasks, css, screenshot, severe_console_errors, sign_in, wait_for
from tests.support.servers import LiveServer


def _send(driver: Any, text: str) -> None:
    box = css(driver, ".tp-input")[0]
    box.send_keys(text)
    box.send_keys("\n")
    wait_for(driver, lambda d: not css(d, ".tp-console--busy"), "the answer to end")


def _add(server: LiveServer, user: str, title: str, **fields: Any) -> dict[str, Any]:
    token = mint_dev_token(Settings.from_env({}), user)
    response = httpx.post(
        f"{server.base_url}/api/tasks", json={"title": title, **fields}, headers={"Authorization": f"Bearer {token}"}
    )
    response.raise_for_status()
    return dict(response.json())


def _one(driver: Any, selector: str, what: str) -> Any:
    return wait_for(driver, lambda d: next(iter(css(d, selector)), None), what)


def test_console_lists_confirms_chooses_and_edits_tasks_in_widgets(
    live_server_factory: Callable[..., LiveServer], browser: Callable[..., Any]
) -> None:
    server = live_server_factory()
    milk = _add(server, "wendy", "Buy milk")
    goat = _add(server, "wendy", "Milk the goat")
    eggs = _add(server, "wendy", "Buy eggs", due_date="2026-12-24")
    driver = browser()
    driver.get(f"{server.base_url}/?ui=console")
    sign_in(driver, "wendy")

    # The list: a ListView with one item per task, under its status line.
    _send(driver, "show my tasks")
    item = f'.tp-w-listview li[data-key="task:{eggs["id"]}"]'
    _one(driver, item, "the eggs item")
    assert "Your tasks · 3" in css(driver, ".tp-w-listview .tp-w-list-status")[-1].text
    screenshot(driver, "widget-list-view.png")

    # Delete opens a confirm dialog; Cancel keeps the task, Delete removes it.
    css(driver, f'{item} button[data-action="task.delete"]')[-1].click()
    dialog = _one(driver, '[role="alertdialog"]', "the confirm dialog")
    assert dialog.get_attribute("aria-label") == "Delete this task?"
    assert "cannot be undone" in dialog.text
    assert len(api_tasks(server, "wendy")) == 3, "asking must delete nothing"
    screenshot(driver, "widget-confirm-dialog.png")
    dialog.find_element("css selector", 'button[data-action="task.delete.cancel"]').click()
    _one(driver, item, "the list again after Cancel")
    assert len(api_tasks(server, "wendy")) == 3
    css(driver, f'{item} button[data-action="task.delete"]')[-1].click()
    _one(driver, '[role="alertdialog"] button[data-action="task.delete.confirm"]', "the dialog again").click()
    wait_for(driver, lambda d: eggs["id"] not in {t["id"] for t in api_tasks(server, "wendy")}, "eggs deleted")

    # Edit opens a form; a title of spaces is refused with the reason, a good one is saved.
    milk_item = f'.tp-w-listview li[data-key="task:{milk["id"]}"]'
    _one(driver, f'{milk_item} button[data-action="task.edit"]', "the Edit button").click()
    title = _one(driver, 'form.tp-w-form input[name="title"]', "the edit form")
    assert title.get_attribute("value") == "Buy milk"
    assert css(driver, 'form.tp-w-form input[type="date"][name="due_date"]')
    assert css(driver, 'form.tp-w-form label[for="' + str(title.get_attribute("id")) + '"]')
    title.clear()
    title.send_keys("   ")
    css(driver, 'form.tp-w-form button[type="submit"]')[-1].click()
    _one(driver, "form.tp-w-form .tp-w-color--danger", "the refusal in the form")
    assert "Not saved: title must be 1 to 200 characters" in css(driver, "form.tp-w-form")[-1].text
    assert {t["title"] for t in api_tasks(server, "wendy")} == {"Buy milk", "Milk the goat"}

    title = css(driver, 'form.tp-w-form input[name="title"]')[-1]
    title.clear()
    title.send_keys("Buy oat milk")
    date = css(driver, 'form.tp-w-form input[name="due_date"]')[-1]
    driver.execute_script("arguments[0].value = '2026-12-31'", date)
    priority = css(driver, 'form.tp-w-form select[name="priority"]')[-1]
    priority.find_element("css selector", 'option[value="high"]').click()
    screenshot(driver, "widget-edit-form.png")
    css(driver, 'form.tp-w-form button[type="submit"]')[-1].click()
    wait_for(
        driver,
        lambda d: (
            {(t["title"], t.get("due_date"), t["priority"]) for t in api_tasks(server, "wendy")}
            == {("Buy oat milk", "2026-12-31", "high"), ("Milk the goat", None, "medium")}
        ),
        "the edit saved",
    )
    _one(driver, milk_item, "the list after saving")
    # Save is a synchronous action (no stream, so no tasks.changed effect): the panel reloads on its answer.
    wait_for(driver, lambda d: any("Buy oat milk" in el.text for el in css(d, ".tp-task")), "the panel refreshed")

    # Several matches: a choice; picking one asks, confirming deletes exactly that one.
    _send(driver, "delete the milk task")
    choice = _one(driver, '[data-key="choice:delete"]', "the choice")
    assert "Which task should I delete?" in choice.text
    choice.find_element("css selector", f'li[data-key="task:{goat["id"]}"]').click()
    _one(driver, '[role="alertdialog"] button[data-action="task.delete.confirm"]', "the confirm dialog").click()
    wait_for(driver, lambda d: [t["title"] for t in api_tasks(server, "wendy")] == ["Buy oat milk"], "goat deleted")
    _one(driver, '[data-key="deleted"]', "the deleted card")
    assert severe_console_errors(driver) == []


def test_console_asks_which_priority_with_choices_and_adds_the_task_with_the_one_picked(
    live_server_factory: Callable[..., LiveServer], browser: Callable[..., Any]
) -> None:
    server = live_server_factory()
    driver = browser()
    driver.get(f"{server.base_url}/?ui=console")
    sign_in(driver, "xena")
    _send(driver, "add a task to buy milk, which priority should I use?")
    asked = _one(driver, ".tp-structured", "the structured input")
    assert "Which priority should “Buy milk” have?" in asked.text
    assert [b.text for b in asked.find_elements("css selector", "button")] == ["high", "medium", "low", "Skip"]
    assert api_tasks(server, "xena") == []
    screenshot(driver, "structured-input.png")
    asked.find_element("css selector", 'button[data-choice="high"]').click()
    wait_for(
        driver,
        lambda d: [(t["title"], t["priority"]) for t in api_tasks(server, "xena")] == [("Buy milk", "high")],
        "the task added",
    )
    wait_for(driver, lambda d: not css(d, ".tp-structured button"), "the question answered")
    assert "high" in css(driver, ".tp-structured")[0].text
    assert severe_console_errors(driver) == []
