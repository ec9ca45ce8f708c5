"""The page at `/` in a real headless Chromium against a live server.

The browser can reach nothing but 127.0.0.1 (`--host-resolver-rules`), so ChatKit's CDN script
fails to load exactly as on an offline network, and the page must fall back to its built-in
console. Other tests serve a stand-in `chatkit.js` for the CDN's host name over local TLS
(`tests/support/chatkit_standin.js`, see `tests/support/browser.py`) to check how the page configures the
ChatKit web component when it does load, in both modes. The stand-in is not ChatKit: it calls our
code the way the component does; in production the real one comes from OpenAI's CDN.

Needs Debian's `chromium` and `chromium-driver` (and the `selenium` package). Without them the
tests are skipped with the reason, except under CI (`CI=true`), where they fail.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from tests.support.browser import (
    api_tasks,
    cdn_rules,
    css,
    ready,
    screenshot,
    severe_console_errors,
    sign_in,
    texts,
    wait_for,
)
from tests.support.servers import LiveServer

# Snapshots of the assistant's answer while it streams, to prove it renders incrementally.
RECORD_STREAMING = """
window.__partials = [];
const log = document.querySelector(".tp-log");
new MutationObserver(() => {
  const bubble = log.querySelector(".tp-msg--assistant.tp-msg--streaming .tp-bubble");
  if (bubble && bubble.textContent) window.__partials.push(bubble.textContent);
}).observe(log, { subtree: true, childList: true, characterData: true });
"""


def send(driver: Any, text: str) -> None:
    box = css(driver, ".tp-input")[0]
    box.send_keys(text)
    box.send_keys("\n")  # Enter sends


def idle(driver: Any) -> bool:
    return not css(driver, ".tp-console--busy")


def test_page_falls_back_to_console_and_chats_adds_tasks_acts_and_keeps_history(
    live_server_factory: Callable[..., LiveServer], browser: Callable[..., Any]
) -> None:
    # Paced deltas hold the answer open long enough to see it arrive in pieces; a small body
    # limit lets the page meet a real problem+json error.
    server = live_server_factory({"OFFLINE_MODEL_DELAY_MS": "250", "MAX_REQUEST_BYTES": "8192"})
    driver = browser()
    driver.get(f"{server.base_url}/")

    # Development mode: the page asks for a user name and mints a token for it.
    sign_in(driver, "alice")
    root = driver.find_element("id", "taskpilot-app")
    assert root.get_attribute("data-ui") == "console", "ChatKit's CDN is unreachable: the console must take over"
    assert "alice" in texts(driver, ".tp-user")[0]
    assert css(driver, ".tp-start .tp-prompt"), "the start screen offers task prompts"
    wait_for(
        driver, lambda d: "Nothing open" in d.find_element("css selector", ".tp-task-list").text, "empty task panel"
    )

    # Ask; the answer streams in, the tool's progress shows, and the task panel refreshes.
    driver.execute_script(RECORD_STREAMING)
    send(driver, "add a task to buy milk tomorrow")
    wait_for(driver, lambda d: any("Buy milk" in t for t in texts(d, ".tp-msg--assistant")), "the assistant's answer")
    wait_for(driver, idle, "the stream to end")
    answer = texts(driver, ".tp-msg--assistant")[-1]
    assert answer.startswith("Added #1"), answer
    partials = [p for p in driver.execute_script("return window.__partials") if p != answer]
    assert partials, "the answer appeared all at once instead of streaming"
    assert all(answer.startswith(p) for p in partials), (partials, answer)
    assert any(len(p) < len(answer) for p in partials)
    assert "Added #1 Buy milk" in texts(driver, ".tp-workflow .tp-step--complete")
    assert texts(driver, ".tp-msg--user") == ["add a task to buy milk tomorrow"]
    row = wait_for(
        driver,
        lambda d: next((el for el in css(d, ".tp-task") if "Buy milk" in el.text), None),
        "the new task in the panel (tasks.changed)",
    )
    assert "Due " in row.text
    (task,) = api_tasks(server, "alice")
    assert task["title"] == "Buy milk"
    assert task["due_date"] == (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)).isoformat()
    assert row.get_attribute("data-task-id") == task["id"]
    thread_title = wait_for(driver, lambda d: texts(d, ".tp-thread--active .tp-thread-title")[0], "the thread title")
    assert thread_title == "Add a task to buy milk tomorrow"

    # The task widget's buttons are ChatKit actions (threads.custom_action with the widget item).
    send(driver, "show my open tasks")
    done_button = wait_for(
        driver,
        lambda d: d.find_element("css selector", f'[data-key="task:{task["id"]}"] button[data-action="task.complete"]'),
        "the task-list widget",
    )
    wait_for(driver, idle, "the list answer to end")
    done_button.click()
    wait_for(
        driver,
        lambda d: d.find_elements("css selector", f'[data-key="task:{task["id"]}"] button[data-action="task.reopen"]'),
        "the widget to be replaced with the task done",
    )
    wait_for(driver, lambda d: "Nothing open" in d.find_element("css selector", ".tp-task-list").text, "panel refresh")
    wait_for(driver, lambda d: "1 done" in d.find_element("css selector", ".tp-task-summary").text, "summary refresh")
    assert api_tasks(server, "alice")[0]["completed"] is True

    # A refusal before the stream opens is problem+json; the page shows its detail.
    driver.execute_script(
        "const box = document.querySelector('.tp-input'); box.value = 'x'.repeat(9000);"
        "document.querySelector('.tp-composer').requestSubmit();"
    )
    error = wait_for(
        driver, lambda d: d.find_element("css selector", ".tp-banner--error .tp-banner-text"), "the problem+json error"
    )
    assert error.text.endswith(
        ": The body is larger than MAX_REQUEST_BYTES (8192 bytes); only input.transcribe may carry more"
        " (its audio, up to TRANSCRIPTION_MAX_BYTES)."
    ), error.text
    assert "null" not in css(driver, ".tp-banner--error")[0].text

    # Reload: the same user, the same conversation with its history and the widget as it is now.
    screenshot(driver, "frontend-console-before-reload.png")
    driver.refresh()
    wait_for(driver, ready, "the page after reload")
    wait_for(driver, lambda d: len(css(d, ".tp-msg--user")) >= 2, "the conversation's history")
    assert texts(driver, ".tp-msg--user")[:2] == ["add a task to buy milk tomorrow", "show my open tasks"]
    assert any(t.startswith("Added #1") for t in texts(driver, ".tp-msg--assistant"))
    assert css(driver, f'[data-key="task:{task["id"]}"] button[data-action="task.reopen"]')
    assert texts(driver, ".tp-thread--active .tp-thread-title") == ["Add a task to buy milk tomorrow"]
    assert texts(driver, ".tp-conv-title") == ["Add a task to buy milk tomorrow"]
    assert "alice" in texts(driver, ".tp-user")[0]

    # A new chat from a start-screen prompt becomes a second thread in the list.
    css(driver, ".tp-new-thread")[0].click()
    prompt = next(el for el in css(driver, ".tp-start .tp-prompt") if el.text == "What's open?")
    prompt.click()
    wait_for(driver, lambda d: len(css(d, ".tp-thread")) == 2 and idle(d), "a second conversation")
    assert texts(driver, ".tp-msg--user") == ["Show my open tasks"]

    # A ChatKit `error` event reads as a message with a retry that really re-runs the turn.
    last_answer_id = css(driver, ".tp-msg--assistant")[-1].get_attribute("data-item-id")
    driver.execute_script(
        "document.getElementById('taskpilot-app').taskpilot.chat.handleEvent("
        "{type: 'error', code: 'custom', message: 'The model is busy; try again.', allow_retry: true})"
    )
    banner = css(driver, ".tp-banner--error")[0]
    assert banner.find_element("css selector", ".tp-banner-text").text == "The model is busy; try again."
    banner.find_element("css selector", "button.tp-btn").click()  # Retry
    wait_for(
        driver,
        lambda d: (
            (ids := [el.get_attribute("data-item-id") for el in css(d, ".tp-msg--assistant")])
            and last_answer_id not in ids
            and idle(d)
        ),
        "a fresh answer after Retry",
    )
    assert "No open tasks" in texts(driver, ".tp-msg--assistant")[-1]

    # Open the first conversation again from the list, then look at the page.
    next(el for el in css(driver, ".tp-thread") if "buy milk" in el.text.lower()).click()
    wait_for(driver, lambda d: "buy milk" in d.find_element("css selector", ".tp-conv-title").text.lower(), "thread 1")
    css(driver, '.tp-tab[data-filter="all"]')[0].click()
    wait_for(driver, lambda d: "Buy milk" in d.find_element("css selector", ".tp-task-list").text, "the All filter")
    path = screenshot(driver, "frontend-console.png")
    assert path.stat().st_size > 10_000

    assert driver.execute_script("return window.__cspViolations") == []
    assert driver.execute_script("return document.querySelectorAll('[style]').length") == 0, "no inline styles"
    assert severe_console_errors(driver, 413) == []


def test_development_sign_in_refuses_a_bad_user_name_readably(
    live_server_factory: Callable[..., LiveServer], browser: Callable[..., Any]
) -> None:
    server = live_server_factory()
    driver = browser()
    driver.get(f"{server.base_url}/")
    field = wait_for(driver, lambda d: d.find_element("id", "tp-user-name"), "the sign-in form")
    # The browser's own pattern check would stop the form; drop it to reach the server's answer.
    driver.execute_script("arguments[0].removeAttribute('pattern')", field)
    field.send_keys("bad name!")
    field.submit()
    error = wait_for(driver, lambda d: d.find_element("css selector", ".tp-form-error:not([hidden])"), "the refusal")
    assert "user_id" in error.text and "regex" in error.text, error.text
    assert css(driver, "#tp-user-name"), "still on the sign-in form"


# ---- the ChatKit web component, with a stand-in for the CDN --------------------------------


def test_page_configures_the_chatkit_web_component_when_its_script_loads(
    live_server_factory: Callable[..., LiveServer], browser: Callable[..., Any], fake_cdn: int
) -> None:
    server = live_server_factory({"CHATKIT_DOMAIN_KEY": "domain_pk_test_0123"})
    driver = browser(cdn_rules(fake_cdn), insecure_tls=True)
    driver.get(f"{server.base_url}/")
    sign_in(driver, "bob")
    assert driver.find_element("id", "taskpilot-app").get_attribute("data-ui") == "chatkit"

    options = driver.execute_script(
        "const o = window.__chatkit.options;"
        "return {url: o.api.url, domainKey: o.api.domainKey, fetch: typeof o.api.fetch,"
        " prompts: o.startScreen.prompts.map(p => p.label), greeting: o.startScreen.greeting,"
        " theme: o.theme, placeholder: o.composer.placeholder, history: o.history.enabled,"
        " dictation: o.composer.dictation};"
    )
    assert options["url"] == f"{server.base_url}/chatkit"
    assert options["dictation"] == {"enabled": False}  # no TRANSCRIPTION_MODEL: input.transcribe is 501
    assert options["domainKey"] == "domain_pk_test_0123"
    assert options["fetch"] == "function"
    assert options["prompts"] == ["Add a task", "What's open?", "Due soon", "Overview"]
    assert options["greeting"]
    assert options["theme"]["colorScheme"] == "light"
    assert options["theme"]["color"]["accent"]["primary"] == "#e8590c"
    assert options["placeholder"]
    assert options["history"] is True

    # ChatKit calls `api.fetch`; the page's fetch adds the bearer token, so the server answers.
    # The token it holds is refused first (as after a server restart with a new secret): the
    # fetch mints a fresh one and retries once.
    driver.execute_script(
        "document.getElementById('taskpilot-app').taskpilot.auth.cached.token = 'eyJhbGciOiJIUzI1NiJ9.e30.bad'"
    )
    body = driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const o = window.__chatkit.options;
        const request = {type: "threads.create", params: {input: {
          content: [{type: "input_text", text: "add a task to water the plants"}],
          attachments: [], inference_options: {}}}};
        o.api.fetch(o.api.url, {method: "POST", headers: {"Content-Type": "application/json"},
                                body: JSON.stringify(request)})
          .then(async (r) => done({status: r.status, type: r.headers.get("content-type"), text: await r.text()}))
          .catch((e) => done({error: String(e)}));
        """
    )
    assert body.get("status") == 200, body
    assert driver.execute_script("return document.getElementById('taskpilot-app').taskpilot.auth.cached.token") != (
        "eyJhbGciOiJIUzI1NiJ9.e30.bad"
    )
    assert body["type"].startswith("text/event-stream")
    assert '"client_effect"' in body["text"] and "tasks.changed" in body["text"]
    (task,) = api_tasks(server, "bob")
    assert task["title"] == "Water the plants"

    # The task panel refreshes when ChatKit reports the `tasks.changed` client effect.
    assert "Water the plants" not in driver.find_element("css selector", ".tp-task-list").text
    driver.execute_script(
        "window.__chatkit.dispatchEvent(new CustomEvent('chatkit.effect',"
        " {detail: {name: 'tasks.changed', data: {ids: [arguments[0]]}}}))",
        task["id"],
    )
    row = wait_for(
        driver,
        lambda d: d.find_element("css selector", f'.tp-task[data-task-id="{task["id"]}"]'),
        "the panel to refresh on chatkit.effect",
    )
    assert "tp-task--changed" in (row.get_attribute("class") or "")

    # ChatKit's own errors are shown, with the way out (the built-in console).
    driver.execute_script(
        "window.__chatkit.dispatchEvent(new CustomEvent('chatkit.error', {detail: {error: new Error('boom')}}))"
    )
    status = wait_for(driver, lambda d: d.find_element("css selector", ".tp-status--error"), "the error status")
    assert "boom" in status.text and "?ui=console" in status.text

    assert driver.execute_script("return window.__cspViolations") == []
    assert severe_console_errors(driver, 401) == []


def test_page_turns_on_dictation_when_the_server_has_a_transcription_model(
    live_server_factory: Callable[..., LiveServer], browser: Callable[..., Any], fake_cdn: int
) -> None:
    server = live_server_factory(
        {"TRANSCRIPTION_MODEL": "gpt-4o-mini-transcribe", "OPENAI_API_KEY": "sk-test", "MODEL_PROVIDER": "offline"}
    )
    driver = browser(cdn_rules(fake_cdn), insecure_tls=True)
    driver.get(f"{server.base_url}/")
    sign_in(driver, "bob")
    assert driver.find_element("id", "taskpilot-app").get_attribute("data-ui") == "chatkit"
    assert driver.execute_script("return window.__chatkit.options.composer.dictation") == {"enabled": True}


def test_console_keeps_a_refused_message_and_says_how_long_to_wait(
    live_server_factory: Callable[..., LiveServer], browser: Callable[..., Any]
) -> None:
    server = live_server_factory({"RATE_LIMIT_CHAT_PER_MINUTE": "1"})
    driver = browser()
    driver.get(f"{server.base_url}/?ui=console")
    sign_in(driver, "rita")
    send(driver, "add a task to water the plants")
    wait_for(driver, lambda d: any("water the plants" in t.lower() for t in texts(d, ".tp-msg--assistant")), "answer")
    wait_for(driver, idle, "the first stream to end")

    send(driver, "add a task to call mum")  # the limit admits one a minute: this one gets a 429
    banner = wait_for(
        driver, lambda d: next((t for t in texts(d, ".tp-banner-text") if "Try again in" in t), None), "429"
    )
    assert "Too Many Requests" in banner or "Too many" in banner, banner
    seconds = int(banner.split("Try again in ")[1].split(" s")[0])
    assert 1 <= seconds <= 60
    # Nothing was sent, so nothing is lost: the text is back in the composer.
    assert css(driver, ".tp-input")[0].get_attribute("value") == "add a task to call mum"
    assert texts(driver, ".tp-msg--user") == ["add a task to water the plants"]
    screenshot(driver, "console-rate-limited.png")


def test_deleting_a_task_asks_first_in_the_panel_and_in_the_widget(
    live_server_factory: Callable[..., LiveServer], browser: Callable[..., Any]
) -> None:
    server = live_server_factory({})
    driver = browser()
    driver.get(f"{server.base_url}/?ui=console")
    sign_in(driver, "dora")
    send(driver, "add a task to buy milk")
    wait_for(driver, idle, "the first answer")
    send(driver, "add a task to buy eggs")
    wait_for(driver, idle, "the second answer")
    wait_for(driver, lambda d: len(css(d, ".tp-task")) == 2, "both tasks in the panel")
    milk, eggs = sorted(api_tasks(server, "dora"), key=lambda t: t["number"])

    # The panel: the first click only asks; Cancel keeps the task, Delete removes it.
    def panel_row(task: dict[str, Any]) -> Any:
        return driver.find_element("css selector", f'.tp-task[data-task-id="{task["id"]}"]')

    driver.execute_script("arguments[0].click()", panel_row(milk).find_element("css selector", ".tp-task-delete"))
    assert "cannot be undone" in panel_row(milk).text
    panel_row(milk).find_element("css selector", ".tp-task-cancel-delete").click()
    assert panel_row(milk).find_elements("css selector", ".tp-task-delete")
    assert len(api_tasks(server, "dora")) == 2
    driver.execute_script("arguments[0].click()", panel_row(milk).find_element("css selector", ".tp-task-delete"))
    panel_row(milk).find_element("css selector", ".tp-task-confirm-delete").click()
    wait_for(driver, lambda d: [t["id"] for t in api_tasks(server, "dora")] == [eggs["id"]], "milk deleted")

    # The widget: Delete turns the row into a confirmation served by the server.
    send(driver, "show my open tasks")
    row = f'[data-key="task:{eggs["id"]}"]'
    wait_for(driver, lambda d: d.find_elements("css selector", f'{row} button[data-action="task.delete"]'), "widget")
    wait_for(driver, idle, "the list answer")
    driver.find_element("css selector", f'{row} button[data-action="task.delete"]').click()
    confirm = wait_for(
        driver,
        lambda d: next(iter(d.find_elements("css selector", f'{row} button[data-action="task.delete.confirm"]')), None),
        "the confirmation row",
    )
    assert len(api_tasks(server, "dora")) == 1, "asking must delete nothing"
    screenshot(driver, "widget-delete-confirm.png")
    confirm.click()
    wait_for(driver, lambda d: api_tasks(server, "dora") == [], "eggs deleted after confirming")


def test_schema_page_shows_the_operations_offline_under_its_csp(
    live_server_factory: Callable[..., LiveServer], browser: Callable[..., Any]
) -> None:
    """`/schema` renders the reference UI from the server's own files: the browser reaches only
    127.0.0.1 (no CDN), and the page's policy is checked by recording every CSP violation."""
    server = live_server_factory()
    driver = browser()
    driver.get(f"{server.base_url}/schema")
    wait_for(driver, lambda d: len(css(d, ".opblock")) >= 10, "the operations of the API")
    summaries = " ".join(texts(driver, ".opblock-summary-path"))
    assert "/api/tasks" in summaries and "/chatkit" in summaries, summaries
    assert driver.execute_script("return window.__cspViolations") == []
    assert severe_console_errors(driver) == []
    screenshot(driver, "schema.png")
