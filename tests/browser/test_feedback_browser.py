"""The page's console sends a thumbs-down on an answer: the live server counts it on /metrics
and `taskpilot feedback export` lists it.
"""

from __future__ import annotations

import json

import httpx

from tests.support.feedback import feedback_metric as metric
from tests.support.servers import ServerPool, run_cli, unique_user


def test_the_console_sends_feedback_on_an_answer(live_servers: ServerPool, browser) -> None:
    from tests.support.browser import css, sign_in, wait_for

    server = live_servers.get()
    negative_before = metric(httpx.get(f"{server.base_url}/metrics").text, "negative")
    driver = browser()
    driver.get(f"{server.base_url}/?ui=console")
    sign_in(driver, unique_user("alice"))
    box = css(driver, ".tp-input")[0]
    box.send_keys("add a task to buy oat milk\n")
    button = wait_for(
        driver, lambda d: d.find_element("css selector", '.tp-msg--assistant [data-feedback="negative"]'), "thumbs"
    )
    button.click()
    wait_for(driver, lambda d: button.get_attribute("aria-pressed") == "true", "the vote to be recorded")
    assert metric(httpx.get(f"{server.base_url}/metrics").text, "negative") - negative_before == 1
    answered = css(driver, ".tp-msg--assistant")[-1].get_attribute("data-item-id")
    exported = run_cli(["feedback", "export", "--format", "jsonl"], server.env)
    (row,) = [r for r in (json.loads(line) for line in exported.stdout.splitlines()) if r["item_id"] == answered]
    assert row["kind"] == "negative"
