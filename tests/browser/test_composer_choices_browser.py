"""The page offers the server's composer choices (issue 18, item 2) in headless Chromium.

With the ChatKit stand-in for the CDN (`tests/support/chatkit_standin.js`), what is checked is the options
the page gives the web component: `composer.tools` from `self_hosted.composer` of the health
document, `composer.models` only with MODEL_CHOICES, and `composer.attachments` (`maxSize`, `accept`)
from `self_hosted.attachments`. What the real component shows for them
could only be checked with that stand-in. The built-in console offers the same choices as two
selects, and its messages carry them as `inference_options`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from selenium.webdriver.support.ui import Select

from app.agents.tools import COMPOSER_TOOLS
from tests.support.browser import api_tasks, cdn_rules, css, sign_in, texts, wait_for
from tests.support.servers import LiveServer


def composer_options(driver: Any) -> dict[str, Any]:
    options: dict[str, Any] = driver.execute_script("return window.__chatkit.options.composer")
    return options


def test_page_gives_chatkit_the_composer_tools_and_models_the_server_offers(
    live_server_factory: Callable[..., LiveServer], browser: Callable[..., Any], fake_cdn: int
) -> None:
    server = live_server_factory(
        {
            "MODEL_CHOICES": "gpt-5-mini,gpt-5",
            "ATTACHMENT_MAX_BYTES": "123456",
            "ATTACHMENT_ALLOWED_TYPES": "application/pdf,text/plain",
        }
    )
    driver = browser(cdn_rules(fake_cdn), insecure_tls=True)
    driver.get(f"{server.base_url}/")
    sign_in(driver, "bob")
    assert driver.find_element("id", "taskpilot-app").get_attribute("data-ui") == "chatkit"
    composer = composer_options(driver)
    assert composer["tools"] == [
        {"id": tool.id, "label": tool.label, "icon": tool.icon, "placeholderOverride": tool.placeholder}
        for tool in COMPOSER_TOOLS
    ]
    assert composer["models"] == [
        {"id": "gpt-5-mini", "label": "gpt-5-mini", "default": True},
        {"id": "gpt-5", "label": "gpt-5", "default": False},
    ]
    assert composer["dictation"] == {"enabled": False} and composer["placeholder"]
    # Only what attachments.create takes: a file the server would refuse (413, 415) is not offered.
    assert composer["attachments"] == {
        "enabled": True,
        "maxCount": 5,
        "maxSize": 123456,
        "accept": {"application/pdf": [".pdf"], "text/plain": [".txt", ".text", ".log"]},
    }


def test_page_offers_no_model_picker_without_model_choices(
    live_server_factory: Callable[..., LiveServer], browser: Callable[..., Any], fake_cdn: int
) -> None:
    server = live_server_factory()
    driver = browser(cdn_rules(fake_cdn), insecure_tls=True)
    driver.get(f"{server.base_url}/")
    sign_in(driver, "bob")
    composer = composer_options(driver)
    assert "models" not in composer
    assert [tool["id"] for tool in composer["tools"]] == [tool.id for tool in COMPOSER_TOOLS]


def test_console_sends_the_chosen_tool_and_model(
    live_server_factory: Callable[..., LiveServer], browser: Callable[..., Any]
) -> None:
    server = live_server_factory({"MODEL_CHOICES": "gpt-5-mini,gpt-5"})
    driver = browser()
    driver.get(f"{server.base_url}/?ui=console")
    sign_in(driver, "cleo")
    tool = Select(css(driver, ".tp-choice--tool")[0])
    model = Select(css(driver, ".tp-choice--model")[0])
    assert [o.text for o in tool.options] == ["No tool", *(t.label for t in COMPOSER_TOOLS)]
    assert model.first_selected_option.get_attribute("value") == "gpt-5-mini"

    tool.select_by_value("add_task")
    model.select_by_value("gpt-5")
    box = css(driver, ".tp-input")[0]
    assert box.get_attribute("placeholder") == COMPOSER_TOOLS[0].placeholder
    box.send_keys("Buy milk")
    box.send_keys("\n")
    wait_for(driver, lambda d: any("Added" in t for t in texts(d, ".tp-msg--assistant")), "the assistant's answer")
    assert [task["title"] for task in api_tasks(server, "cleo")] == ["Buy milk"]
    # The tool was for that message; the model stays chosen.
    assert tool.first_selected_option.get_attribute("value") == ""
    assert model.first_selected_option.get_attribute("value") == "gpt-5"
    sent = driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const app = document.getElementById('taskpilot-app').taskpilot;
        const threadId = document.querySelector('.tp-thread--active').dataset.threadId;
        app.api.fetch(app.api.url('/chatkit'), {method: 'POST', headers: {'Content-Type': 'application/json'},
          body: JSON.stringify({type: 'items.list', params: {thread_id: threadId, order: 'asc'}})})
          .then((r) => r.json()).then((page) => done(page.data.filter((i) => i.type === 'user_message')
            .map((i) => i.inference_options)));
        """
    )
    assert sent == [{"tool_choice": {"id": "add_task"}, "model": "gpt-5"}]
