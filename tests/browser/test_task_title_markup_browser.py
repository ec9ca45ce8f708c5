"""Markup in a task title, in a real headless Chromium: the console's tag picker, the tagged
message and the answer's entity links show it as text; nothing of it becomes an element or runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.support.browser import api_add_task as add
from tests.support.browser import css, severe_console_errors, sign_in, wait_for
from tests.support.servers import LiveServer

TITLE = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script><b>bold</b>'


def test_a_task_title_with_markup_is_text_in_the_picker_the_mention_and_the_answer_link(
    live_server_factory: Callable[..., LiveServer], browser: Callable[..., Any]
) -> None:
    server = live_server_factory()
    task = add(server, "alice", TITLE)
    driver = browser()
    driver.get(f"{server.base_url}/?ui=console")
    sign_in(driver, "alice")

    box = css(driver, ".tp-input")[0]
    box.send_keys("mark @img")
    wait_for(driver, lambda d: len(css(d, ".tp-tag-option")) == 1, "the picker to offer the task")
    (option,) = css(driver, ".tp-tag-option")
    assert TITLE in option.text
    option.click()
    box.send_keys(" done\n")
    wait_for(driver, lambda d: css(d, ".tp-msg--assistant .tp-source"), "the answer's link to the task")
    wait_for(driver, lambda d: not css(d, ".tp-console--busy"), "the stream to end")

    (mention,) = css(driver, ".tp-msg--user .tp-mention")
    assert mention.text == f"@{TITLE}"
    (source,) = css(driver, ".tp-msg--assistant .tp-source")
    assert source.text == f"#{task['number']} {TITLE}"
    assert TITLE in css(driver, ".tp-msg--assistant")[0].text
    injected = driver.execute_script(
        "return [document.querySelectorAll('img[src=\"x\"], b, script:not([src])').length, window.__xss ?? null]"
    )
    assert injected == [0, None]
    assert not severe_console_errors(driver)
