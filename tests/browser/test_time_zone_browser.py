"""The page and the user's time zone, in a real headless Chromium against a live server.

Chromium is told it is somewhere whose date differs from UTC's right now (DevTools'
`Emulation.setTimezoneOverride`, what the browser's `Intl` then reports). The page sends that zone
as the `Time-Zone` header; with `?tz=ask` it sends none, the assistant asks through its
`get_time_zone` client tool, and the built-in console answers it. For the ChatKit web component
(a stand-in for the CDN script, see tests/support/chatkit_standin.js), the test checks the options the
page gives it: `onClientTool` answers with the browser's zone, and feedback and retry are on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import httpx

from app.http.auth import mint_dev_token
from app.settings import Settings
from tests.support.browser import api_tasks, cdn_rules, css, sign_in, texts, wait_for
from tests.support.servers import LiveServer
from tests.support.time_zones import zone_on_another_date


def in_zone(browser: Callable[..., Any], zone: str, *args: Any, **kwargs: Any) -> Any:
    driver = browser(*args, **kwargs)
    driver.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": zone})
    return driver


def send_and_wait(driver: Any, text: str, expect: str) -> str:
    box = css(driver, ".tp-input")[0]
    box.send_keys(text)
    box.send_keys("\n")
    wait_for(driver, lambda d: any(expect in t for t in texts(d, ".tp-msg--assistant")), f"an answer naming {expect}")
    wait_for(driver, lambda d: not css(d, ".tp-console--busy"), "the stream to end")
    return texts(driver, ".tp-msg--assistant")[-1]


def test_the_console_sends_the_browsers_time_zone(
    live_server_factory: Callable[..., LiveServer], browser: Callable[..., Any]
) -> None:
    server = live_server_factory()
    zone, local_today = zone_on_another_date()
    driver = in_zone(browser, zone)
    driver.get(f"{server.base_url}/?ui=console")
    sign_in(driver, "alice")
    send_and_wait(driver, "add a task to pay rent today", "Pay rent")
    (task,) = api_tasks(server, "alice")
    assert task["due_date"] == local_today.isoformat()
    assert not css(driver, ".tp-banner--error")


def test_without_the_header_the_console_answers_the_get_time_zone_client_tool(
    live_server_factory: Callable[..., LiveServer], browser: Callable[..., Any]
) -> None:
    server = live_server_factory()
    zone, local_today = zone_on_another_date()
    driver = in_zone(browser, zone)
    driver.get(f"{server.base_url}/?ui=console&tz=ask")
    sign_in(driver, "alice")
    tomorrow = (local_today + dt.timedelta(days=1)).isoformat()
    answer = send_and_wait(driver, "add a task to buy milk tomorrow", "Buy milk")
    assert tomorrow in answer, answer
    (task,) = api_tasks(server, "alice")
    assert task["due_date"] == tomorrow
    assert not css(driver, ".tp-banner--error")
    # The asked-and-answered tool call is protocol, not conversation: the log shows none of it.
    assert not css(driver, '[data-item-type="client_tool_call"]')


def test_the_chatkit_component_gets_a_client_tool_handler_and_item_actions(
    live_server_factory: Callable[..., LiveServer], browser: Callable[..., Any], fake_cdn: int
) -> None:
    server = live_server_factory()
    zone, _ = zone_on_another_date()
    driver = in_zone(browser, zone, cdn_rules(fake_cdn), insecure_tls=True)
    driver.get(f"{server.base_url}/")
    sign_in(driver, "bob")
    assert driver.find_element("id", "taskpilot-app").get_attribute("data-ui") == "chatkit"
    options = driver.execute_script(
        "const o = window.__chatkit.options;"
        "return {answer: o.onClientTool({name: 'get_time_zone', params: {}}), actions: o.threadItemActions};"
    )
    assert options["answer"] == {"time_zone": zone}
    assert options["actions"] == {"feedback": True, "retry": True}
    unknown = driver.execute_script(
        "try { window.__chatkit.options.onClientTool({name: 'launch_rockets', params: {}}); return 'answered'; }"
        " catch (e) { return String(e.message); }"
    )
    assert "no client tool named launch_rockets" in unknown


def test_the_chatkit_components_requests_say_the_page_answers_get_time_zone(
    live_server_factory: Callable[..., LiveServer], browser: Callable[..., Any], fake_cdn: int
) -> None:
    """Through the page's `api.fetch` (what the real component posts with), with `?tz=ask` (no
    Time-Zone header): the request carries `ChatKit-Client-Tools: get_time_zone`, so the server asks
    the page, whose `onClientTool` answers; without that header it would use DEFAULT_TIME_ZONE."""
    server = live_server_factory()
    zone, _ = zone_on_another_date()
    driver = in_zone(browser, zone, cdn_rules(fake_cdn), insecure_tls=True)
    driver.get(f"{server.base_url}/?tz=ask")
    sign_in(driver, "cleo")
    assert driver.find_element("id", "taskpilot-app").get_attribute("data-ui") == "chatkit"
    sent = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "window.__chatkit.send('what is due today?').then(done, (e) => done({error: String(e)}));"
    )
    assert sent["status"] == 200 and "error" not in sent["events"], sent
    token = mint_dev_token(Settings.from_env({}), "cleo")
    headers = {"Authorization": f"Bearer {token}"}
    threads = httpx.post(
        f"{server.base_url}/chatkit", json={"type": "threads.list", "params": {"limit": 5}}, headers=headers
    ).json()["data"]
    items = httpx.post(
        f"{server.base_url}/chatkit",
        json={"type": "items.list", "params": {"thread_id": threads[0]["id"], "order": "desc", "limit": 1}},
        headers=headers,
    ).json()["data"]
    assert (items[0]["type"], items[0]["name"], items[0]["status"]) == ("client_tool_call", "get_time_zone", "pending")
