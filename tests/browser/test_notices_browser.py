"""A `notice` in the built-in console, in a real headless Chromium against a live server: the
turn that nearly spends the user's chat rate limit shows its warning as a banner."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.support.browser import css, sign_in, texts, wait_for
from tests.support.servers import LiveServer


def _send(driver: Any, text: str, answers: int) -> None:
    box = css(driver, ".tp-input")[0]
    box.send_keys(text)
    box.send_keys("\n")
    wait_for(driver, lambda d: len(texts(d, ".tp-msg--assistant")) >= answers, f"answer {answers}")
    wait_for(driver, lambda d: not css(d, ".tp-console--busy"), "the stream to end")


def test_the_console_shows_a_near_limit_notice_as_a_warning_banner(
    live_server_factory: Callable[..., LiveServer], browser: Callable[..., Any]
) -> None:
    server = live_server_factory({"RATE_LIMIT_CHAT_PER_MINUTE": "2"})
    driver = browser()
    driver.get(f"{server.base_url}/?ui=console")
    sign_in(driver, "alice")

    _send(driver, "add a task to buy milk", 1)
    assert not [el for el in css(driver, ".tp-banner") if el.is_displayed()]  # half the limit: no word

    _send(driver, "list my tasks", 2)
    banner = wait_for(
        driver, lambda d: [el for el in css(d, ".tp-banner--warning") if el.is_displayed()], "the warning banner"
    )[0]
    assert "Message limit nearly reached" in banner.text
    assert "This was your last message for now (limit: 2 per minute)" in banner.text
    assert not css(driver, ".tp-banner--error")
