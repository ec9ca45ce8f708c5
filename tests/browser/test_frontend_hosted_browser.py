"""Hosted mode of the page at `/`, in headless Chromium against a live server whose OpenAI base URL
is a local fake of the sessions API (tests/support/fake_openai.py).

ChatKit's CDN host is mapped to the stand-in `tests/support/chatkit_standin.js` (see
`tests/support/browser.py`). The stand-in is not ChatKit: it calls the page's
`api.getClientSecret` the way the component does (`null` when it starts, the current secret when
that expired), so these tests check *our* rules: mint, reuse within the lifetime, refresh that
cancels upstream, errors in words. They cannot show that OpenAI's real component accepts the
secrets or how it behaves in between; in production it is loaded from OpenAI's CDN.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import httpx

from tests.support.browser import (
    OFFLINE_RULES,
    STATIC_DIR,
    STORAGE_KEY,
    WORKFLOW_ID,
    api_add_task,
    cdn_rules,
    css,
    expire,
    has_secret,
    hosted_server,
    ready,
    screenshot,
    secret_calls,
    severe_console_errors,
    sign_in,
    stored,
    texts,
    wait_for,
)
from tests.support.fake_openai import FakeOpenAI, error_body
from tests.support.hosted import API_KEY  # the key the shared `fake_openai` knows
from tests.support.servers import LiveServer


def ui(driver: Any) -> str:
    return str(driver.find_element("id", "taskpilot-app").get_attribute("data-ui"))


def notice_text(driver: Any) -> str:
    return str(wait_for(driver, lambda d: d.find_element("css selector", ".tp-notice-text"), "the notice").text)


def test_hosted_mode_mints_reuses_within_the_lifetime_refreshes_and_cancels(
    live_server_factory: Callable[..., LiveServer], browser: Callable[..., Any], fake_cdn: int, fake_openai: FakeOpenAI
) -> None:
    server = hosted_server(live_server_factory, fake_openai)
    milk = api_add_task(server, "dana", "Buy milk")
    driver = browser(cdn_rules(fake_cdn), insecure_tls=True)
    driver.get(f"{server.base_url}/")
    sign_in(driver, "dana")

    # Both modes are configured: self-hosted is the default, and the switch offers hosted.
    root = driver.find_element("id", "taskpilot-app")
    assert root.get_attribute("data-mode") == "self-hosted" and ui(driver) == "chatkit"
    assert texts(driver, ".tp-mode-btn") == ["Self-hosted", "Hosted"]
    assert fake_openai.creates() == [], "self-hosted mode mints no hosted session"
    css(driver, '.tp-mode-btn[data-mode="hosted"]')[0].click()
    wait_for(
        driver,
        lambda d: ready(d) and d.find_element("id", "taskpilot-app").get_attribute("data-mode") == "hosted",
        "hosted mode",
    )
    wait_for(driver, has_secret, "the stand-in to get its first secret")
    assert driver.current_url.endswith("/?mode=hosted")
    assert css(driver, '.tp-mode-btn[data-mode="hosted"]')[0].get_attribute("aria-pressed") == "true"

    # The first call mints one session for the signed-in user; the page's own first call and
    # ChatKit's share it (one upstream request).
    (create,) = fake_openai.creates()
    assert create.body["user"] == "dana" and create.body["workflow"]["id"] == WORKFLOW_ID
    first = stored(driver)
    assert first is not None
    upstream = fake_openai.sessions[first["session_id"]]
    assert first["client_secret"] == upstream["client_secret"]
    assert secret_calls(driver) == [{"current": None, "secret": first["client_secret"]}]
    assert first["owner"] == "dana"
    expires = dt.datetime.fromisoformat(first["expires_at"].replace("Z", "+00:00")).timestamp()
    assert abs(expires - upstream["expires_at"]) < 2
    options = driver.execute_script(
        "const o = window.__chatkit.options; return {keys: Object.keys(o.api), theme: o.theme.colorScheme,"
        " prompts: o.startScreen.prompts.length, history: o.history.enabled};"
    )
    assert options == {"keys": ["getClientSecret"], "theme": "light", "prompts": 4, "history": True}
    # TaskPilot's tasks are unknown to OpenAI's workflow: no tags, previews or "/" commands of them,
    # and the panel's "Ask" puts the task's number and title in the composer as text.
    assert (
        driver.execute_script("const o = window.__chatkit.options; return 'entities' in o || 'commands' in o") is False
    )
    ask = wait_for(driver, lambda d: css(d, ".tp-task-ask")[0], "the task panel's Ask")
    ask.click()
    wait_for(driver, lambda d: d.execute_script("return window.__chatkit.composerValues.length") == 1, "the prefill")
    assert driver.execute_script("return window.__chatkit.composerValues") == [
        {"text": f'About task #{milk["number"]} "Buy milk": '}
    ]

    # A reload within the lifetime reuses the secret this tab holds: no new upstream request.
    driver.refresh()
    wait_for(driver, lambda d: ready(d) and has_secret(d), "hosted mode after reload")
    assert len(fake_openai.creates()) == 1
    assert secret_calls(driver) == [{"current": None, "secret": first["client_secret"]}]

    # ChatKit's secret expired: it names the current one; the server mints anew and cancels the old.
    call = expire(driver)
    assert call["current"] == first["client_secret"] and "error" not in call, call
    second = stored(driver)
    assert second is not None and call["secret"] == second["client_secret"] != first["client_secret"]
    assert len(fake_openai.creates()) == 2
    assert fake_openai.cancels() == [first["session_id"]]
    assert fake_openai.sessions[first["session_id"]]["status"] == "cancelled"
    assert fake_openai.sessions[second["session_id"]]["status"] == "active"

    driver.refresh()
    wait_for(driver, lambda d: ready(d) and has_secret(d), "hosted mode after the second reload")
    assert secret_calls(driver) == [{"current": None, "secret": second["client_secret"]}]
    assert len(fake_openai.creates()) == 2

    # Less than a minute left: not reused, a new session is minted.
    driver.execute_script(
        "const held = JSON.parse(sessionStorage.getItem(arguments[0]));"
        "held.expires_at = new Date(Date.now() + 30000).toISOString();"
        "sessionStorage.setItem(arguments[0], JSON.stringify(held));",
        STORAGE_KEY,
    )
    driver.refresh()
    wait_for(driver, lambda d: ready(d) and has_secret(d), "hosted mode with a nearly expired secret")
    third = stored(driver)
    assert third is not None and third["session_id"] not in {first["session_id"], second["session_id"]}
    assert len(fake_openai.creates()) == 3
    screenshot(driver, "frontend-hosted.png")

    # Another user in the same tab never gets this user's secret; signing out cancels and clears it.
    driver.execute_script(
        "const held = JSON.parse(sessionStorage.getItem(arguments[0])); held.owner = 'someone-else';"
        "sessionStorage.setItem(arguments[0], JSON.stringify(held));",
        STORAGE_KEY,
    )
    driver.refresh()
    wait_for(driver, lambda d: ready(d) and has_secret(d), "hosted mode with a foreign stored secret")
    fourth = stored(driver)
    assert fourth is not None and fourth["owner"] == "dana" and fourth["session_id"] != third["session_id"]
    assert len(fake_openai.creates()) == 4
    next(el for el in css(driver, ".tp-account button") if el.text == "Switch user").click()
    wait_for(driver, lambda d: d.find_elements("id", "tp-user-name"), "the sign-in form")
    assert stored(driver) is None
    wait_for(driver, lambda _: fourth["session_id"] in fake_openai.cancels(), "the held session to be cancelled")

    assert driver.execute_script("return window.__cspViolations") == []
    assert severe_console_errors(driver) == []


def retry_button(driver: Any) -> Any:
    return css(driver, '.tp-notice button[data-action="retry"]')[0]


def test_hosted_mode_shows_each_session_error_in_words_never_a_blank_widget(
    live_server_factory: Callable[..., LiveServer], browser: Callable[..., Any], fake_cdn: int, fake_openai: FakeOpenAI
) -> None:
    # Two sessions a minute per user (burst 2, then one every 30 s), and OpenAI calls that time out
    # after a second.
    server = hosted_server(
        live_server_factory, fake_openai, CHATKIT_SESSION_RATE_LIMIT_PER_MINUTE="2", OPENAI_TIMEOUT_SECONDS="1"
    )
    driver = browser(cdn_rules(fake_cdn), insecure_tls=True)
    driver.get(f"{server.base_url}/?mode=hosted")
    sign_in(driver, "fay")
    wait_for(driver, lambda d: ui(d) == "chatkit" and has_secret(d), "hosted ChatKit")
    held = stored(driver)
    assert held is not None

    # 502 on a refresh: OpenAI rejects the server's key (quoting it back masked: never passed on).
    # ChatKit is told (the promise rejects), the status line says it in words, and the given-up
    # secret is not kept for a reload.
    fake_openai.fail(
        "create",
        401,
        body=error_body(
            "Incorrect API key provided: sk-***cdef.", type_="invalid_request_error", code="invalid_api_key"
        ),
    )
    call = expire(driver)
    assert call["current"] == held["client_secret"] and "secret" not in call
    assert call["error"].startswith("Bad Gateway: The server's OpenAI credentials were rejected."), call
    assert "OPENAI_API_KEY" in call["error"] and "sk-" not in call["error"]
    status = wait_for(driver, lambda d: d.find_element("css selector", ".tp-status--error"), "the status line")
    assert status.text == call["error"]
    assert stored(driver) is None

    # 429: TaskPilot's own limit for this user. The notice gives the delay and Retry counts it down.
    driver.refresh()
    wait_for(driver, lambda d: ready(d) and ui(d) == "hosted-error", "the 429 notice")
    text = notice_text(driver)
    assert text.startswith("Too Many Requests: Too many ChatKit sessions requested for this user; retry in "), text
    seconds = int(text.rsplit("retry in ", 1)[1].split()[0])
    assert 1 <= seconds <= 30
    assert not css(driver, "openai-chatkit"), "a notice, not a blank widget"
    assert not retry_button(driver).is_enabled() and retry_button(driver).text.startswith("Retry in ")
    assert len(fake_openai.creates()) == 2, "the refused request never reached OpenAI"
    screenshot(driver, "frontend-hosted-error.png")

    # 504: OpenAI does not answer in time (the SDK tries twice). Retry is offered at once, and works.
    next(el for el in css(driver, ".tp-account button") if el.text == "Switch user").click()
    fake_openai.delay(4, times=2)
    sign_in(driver, "gil")
    assert ui(driver) == "hosted-error", [(r.path, (r.body or {}).get("user")) for r in fake_openai.requests]
    assert [r.body["user"] for r in fake_openai.creates()[2:]] == ["gil", "gil"], "one mint, tried twice"
    assert notice_text(driver).startswith("Gateway Timeout: OpenAI did not answer in time"), notice_text(driver)
    assert retry_button(driver).is_enabled() and retry_button(driver).text == "Retry"
    retry_button(driver).click()
    wait_for(driver, lambda d: ready(d) and ui(d) == "chatkit" and has_secret(d), "hosted ChatKit after Retry")
    held = stored(driver)
    assert held is not None and held["owner"] == "gil"

    # 503 with Retry-After: OpenAI rate-limits the server. Signing gil out first cancels his session.
    next(el for el in css(driver, ".tp-account button") if el.text == "Switch user").click()
    wait_for(driver, lambda _: fake_openai.cancels() == [held["session_id"]], "gil's session to be cancelled")
    fake_openai.fail(
        "create", 429, headers={"retry-after": "17"}, body=error_body("Slow down", type_="requests", code="rate_limit")
    )
    sign_in(driver, "hal")
    assert ui(driver) == "hosted-error", [(r.path, (r.body or {}).get("user")) for r in fake_openai.requests]
    assert notice_text(driver) == (
        "Service Unavailable: OpenAI is rate-limiting this server's ChatKit sessions; retry in 17 seconds."
    )
    assert not retry_button(driver).is_enabled() and retry_button(driver).text in {"Retry in 17 s", "Retry in 16 s"}
    wait_for(driver, lambda d: retry_button(d).text == "Retry in 15 s", "the countdown")

    # 503: hosted mode is not configured on another server; its detail names the variables, and
    # self-hosted mode is one click away.
    plain = live_server_factory({"MODEL_PROVIDER": "offline"})
    driver.get(f"{plain.base_url}/?mode=hosted")
    sign_in(driver, "fay")
    assert ui(driver) == "hosted-error"
    assert notice_text(driver) == (
        "Service Unavailable: Hosted ChatKit sessions are not configured on this server: OPENAI_API_KEY and "
        "CHATKIT_WORKFLOW_ID are not set. The operator must set them and restart; GET /api/chatkit/health shows "
        "the status."
    )
    css(driver, '.tp-notice button[data-action="self-hosted"]')[0].click()
    wait_for(driver, lambda d: ready(d) and ui(d) == "chatkit", "self-hosted mode")
    assert driver.find_element("id", "taskpilot-app").get_attribute("data-mode") == "self-hosted"
    assert driver.execute_script("return Boolean(window.__chatkit.options.api.url)")

    assert driver.execute_script("return window.__cspViolations") == []
    assert severe_console_errors(driver, 429, 502, 503, 504) == []


def test_hosted_mode_without_chatkit_script_says_so_and_offers_the_console(
    live_server_factory: Callable[..., LiveServer], browser: Callable[..., Any], fake_openai: FakeOpenAI
) -> None:
    server = hosted_server(live_server_factory, fake_openai)
    driver = browser(OFFLINE_RULES)  # the CDN is unreachable
    driver.get(f"{server.base_url}/?mode=hosted")
    sign_in(driver, "gus")
    assert ui(driver) == "hosted-unavailable"
    text = notice_text(driver)
    assert "could not be loaded from OpenAI's CDN (https://cdn.platform.openai.com)" in text
    assert "runs on OpenAI's servers" in text
    assert fake_openai.creates() == [], "no session is minted that could not be used"
    screenshot(driver, "frontend-hosted-no-cdn.png")

    css(driver, '.tp-notice button[data-action="self-hosted"]')[0].click()
    wait_for(driver, lambda d: ready(d) and ui(d) == "console", "the built-in console")
    assert driver.current_url.endswith("/?mode=self-hosted")
    assert css(driver, ".tp-console .tp-input")
    assert driver.execute_script("return window.__cspViolations") == []


def test_no_key_workflow_id_or_client_secret_in_page_assets_urls_cookies_or_logs(
    live_server_factory: Callable[..., LiveServer], browser: Callable[..., Any], fake_cdn: int, fake_openai: FakeOpenAI
) -> None:
    server = hosted_server(live_server_factory, fake_openai, CHATKIT_DOMAIN_KEY="domain_pk_public_0123")
    driver = browser(cdn_rules(fake_cdn), insecure_tls=True)
    driver.get(f"{server.base_url}/?mode=hosted")
    sign_in(driver, "hana")
    wait_for(driver, has_secret, "a hosted session")
    driver.refresh()
    wait_for(driver, lambda d: ready(d) and has_secret(d), "hosted mode after reload")
    assert "error" not in expire(driver)
    secrets = [session["client_secret"] for session in fake_openai.sessions.values()]
    assert len(secrets) == 2

    # What the browser was sent and used: the page, every static file, the health document, the
    # addresses of every request it made, its cookies and its console.
    with httpx.Client(base_url=server.base_url) as client:
        served = [client.get("/").text, client.get("/api/chatkit/health").text]
        served += [client.get(f"/static/{path.name}").text for path in sorted(STATIC_DIR.iterdir())]
    urls = driver.execute_script("return performance.getEntries().map((e) => e.name)")
    assert any("/api/chatkit/sessions/refresh" in url for url in urls)
    cookies = json.dumps(driver.get_cookies())
    console = json.dumps(driver.get_log("browser"))
    seen = [*served, driver.page_source, driver.current_url, *urls, cookies, console]
    for secret in (API_KEY, API_KEY[-12:], WORKFLOW_ID, *secrets):
        assert not [blob for blob in seen if secret in blob], "a secret reached the browser outside sessionStorage"
    assert "domain_pk_public_0123" in served[0], "the public domain key is the one setting the page carries"

    # The server's logs of the whole run: mints and refreshes are logged, never with a secret.
    log = server.log()
    assert "hosted session minted" in log and "hosted session refreshed" in log
    for secret in (API_KEY, API_KEY[-12:], WORKFLOW_ID, *secrets):
        assert secret not in log
