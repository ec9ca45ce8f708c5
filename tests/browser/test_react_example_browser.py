"""examples/react, built (`npm run build`), in headless Chromium against a live TaskPilot.

The built app is served from its own origin on 127.0.0.1 (TaskPilot lists it in CORS_ORIGINS,
as a real deployment on another origin would), under a strict CSP, with its `taskpilot-url`
meta tag filled in. ChatKit's CDN host is mapped to the stand-in `tests/support/chatkit_standin.js`
(see `tests/support/browser.py`): it is not ChatKit, it calls what `@openai/chatkit-react`
hands the web component (`setOptions`, `api.fetch`, `api.getClientSecret`) the way the component
does. So these tests check the example's wiring of both modes, not the real component, which in
production comes from OpenAI's CDN.

.ci/run installs and builds the example (`npm ci`, `npm run build`) before the tests. Locally a
stale or missing build is rebuilt when `node_modules` is there; without node/npm or
`node_modules` the tests are skipped with the reason, and under CI (`CI=true`) they fail.
"""

from __future__ import annotations

import datetime as dt
import html
import shutil
import subprocess
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.agents.tools import COMPOSER_TOOLS
from tests.support.auth import bearer as auth_bearer
from tests.support.browser import (
    CDN_HOST,
    IN_CI,
    OFFLINE_RULES,
    STATIC_DIR,
    STORAGE_KEY,
    api_tasks,
    cdn_rules,
    css,
    expire,
    has_secret,
    hosted_server,
    screenshot,
    secret_calls,
    severe_console_errors,
    stored,
    wait_for,
)
from tests.support.fake_openai import FakeOpenAI, error_body
from tests.support.http_thread import serve_in_thread
from tests.support.servers import PROJECT_ROOT, LiveServer
from tests.support.time_zones import zone_on_another_date

EXAMPLE = PROJECT_ROOT / "examples" / "react"
DIST = EXAMPLE / "dist"
BUILD_TIMEOUT_SECONDS = 180


def _sources() -> list[Path]:
    files = [EXAMPLE / name for name in ("index.html", "vite.config.js", "package.json", "package-lock.json")]
    files.append(EXAMPLE / "tsconfig.json")
    folders = [*sorted(p for p in (EXAMPLE / "src").rglob("*") if p.is_file()), *sorted((EXAMPLE / "public").iterdir())]
    shared = [STATIC_DIR / name for name in ("hosted-session.js", "entities.js", "chatkit-options.js", "api.js")]
    return [*files, *folders, *shared]


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason}; CI must build and test the React example (.ci/run runs npm ci and npm run build)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def react_dist() -> Path:
    """The built example; rebuilt first when a source is newer than the build."""
    index = DIST / "index.html"
    newest = max(path.stat().st_mtime for path in _sources())
    if index.exists() and index.stat().st_mtime >= newest:
        return DIST
    npm = shutil.which("npm")
    if not npm or not shutil.which("node"):
        _unavailable("node and npm are needed to build examples/react (Node 20.19 or newer)")
    if not (EXAMPLE / "node_modules" / ".package-lock.json").exists():
        _unavailable("examples/react has no node_modules: run `npm ci` there first")
    assert npm is not None
    result = subprocess.run(
        [npm, "run", "build"],
        cwd=EXAMPLE,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_SECONDS,
        check=False,
    )
    assert result.returncode == 0, f"npm run build failed:\n{result.stdout}\n{result.stderr}"
    assert index.exists()
    return DIST


class StaticSite:
    """The built app on its own origin. `meta` fills index.html's run-time settings."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.meta: dict[str, str] = {}
        self.csp = ""
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.serve(self)

            def log_message(self, *args: Any) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = serve_in_thread(self.httpd)

    def serve(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?", 1)[0]
        if path in {"/", "/index.html"}:
            page = (self.root / "index.html").read_text()
            for name, value in self.meta.items():
                page = page.replace(
                    f'<meta name="{name}" content="">', f'<meta name="{name}" content="{html.escape(value)}">'
                )
            body, kind = page.encode(), "text/html; charset=utf-8"
        else:
            file = (self.root / path.lstrip("/")).resolve()
            if not file.is_file() or self.root.resolve() not in file.parents:
                handler.send_error(404)
                return
            body = file.read_bytes()
            kind = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}.get(
                file.suffix, "application/octet-stream"
            )
        handler.send_response(200)
        handler.send_header("Content-Type", kind)
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Content-Security-Policy", self.csp)
        handler.end_headers()
        handler.wfile.write(body)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def site(react_dist: Path) -> Iterator[StaticSite]:
    served = StaticSite(react_dist)
    yield served
    served.stop()


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI("sk-test-TaskPilotReactKey-0123456789abcdef")
    yield fake
    fake.stop()


def serve_example_against(site: StaticSite, server: LiveServer, **meta: str) -> None:
    cdn = f"https://{CDN_HOST}"
    site.meta = {"taskpilot-url": server.base_url, **meta}
    # No inline script, TaskPilot the only API: the example runs under a policy as strict as the page's.
    site.csp = (
        f"default-src 'self'; script-src 'self' {cdn}; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
        f"connect-src 'self' {server.base_url} {cdn}; frame-src {cdn}; object-src 'none'; base-uri 'none'"
    )


def dev_sign_in(driver: Any, user: str) -> None:
    field = wait_for(driver, lambda d: d.find_element("id", "user-name"), "the example's development sign-in")
    field.send_keys(user)
    field.submit()


def chat_mode(driver: Any) -> str:
    return str(driver.find_element("css selector", "main.chat").get_attribute("data-mode"))


def standin_mode(driver: Any) -> str | None:
    mode: str | None = driver.execute_script("return window.__chatkit ? window.__chatkit.mode : null")
    return mode


def task_titles(driver: Any) -> list[str]:
    return [str(el.text) for el in css(driver, ".task .task-title")]


def test_react_example_wires_both_modes_to_a_live_taskpilot(
    live_server_factory: Callable[..., LiveServer],
    browser: Callable[..., Any],
    fake_cdn: int,
    fake_openai: FakeOpenAI,
    site: StaticSite,
) -> None:
    server = hosted_server(live_server_factory, fake_openai, CORS_ORIGINS=site.url)
    serve_example_against(site, server, **{"chatkit-domain-key": "domain_pk_example_0123"})
    driver = browser(cdn_rules(fake_cdn), insecure_tls=True)
    driver.get(f"{site.url}/?mode=self-hosted")
    dev_sign_in(driver, "ivy")

    # Self-hosted: useChatKit({api: {url: <TaskPilot>/chatkit, domainKey, fetch, uploadStrategy}}).
    wait_for(driver, lambda d: standin_mode(d) == "self-hosted", "ChatKit in self-hosted mode")
    options = driver.execute_script(
        "const o = window.__chatkit.options; return {keys: Object.keys(o.api).sort(), url: o.api.url,"
        " domainKey: o.api.domainKey, upload: o.api.uploadStrategy, attachments: o.composer.attachments.enabled,"
        " prompts: o.startScreen.prompts.length, history: o.history.enabled, actions: o.threadItemActions,"
        " dictation: o.composer.dictation, tools: (o.composer.tools || []).map((t) => t.id),"
        " models: 'models' in o.composer, entities: Object.keys(o.entities).sort(),"
        " clientTool: typeof o.onClientTool};"
    )
    assert options == {
        "keys": ["domainKey", "fetch", "uploadStrategy", "url"],
        "url": f"{server.base_url}/chatkit",
        "domainKey": "domain_pk_example_0123",
        "upload": {"type": "two_phase"},
        "attachments": True,
        "prompts": 2,
        "history": True,
        "actions": {"feedback": True, "retry": True},
        # No TRANSCRIPTION_MODEL, no MODEL_CHOICES: no dictation and no model picker.
        "dictation": {"enabled": False},
        "tools": [tool.id for tool in COMPOSER_TOOLS],
        "models": False,
        "entities": ["onClick", "onRequestPreview", "onTagSearch"],
        "clientTool": "function",
    }
    wait_for(driver, lambda d: "Nothing open." in d.find_element("css selector", ".tasks").text, "the empty list")

    # ChatKit's requests go through the example's fetch: it carries ivy's bearer token to /chatkit
    # (TaskPilot answers 401 without one), and the `tasks.changed` effect refreshes the list.
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "window.__chatkit.send('add a task to water the plants').then(done, (e) => done({error: String(e)}));"
    )
    assert result.get("status") == 200, result
    assert result["contentType"].startswith("text/event-stream")
    assert "thread.created" in result["events"] and "client_effect" in result["events"]
    (task,) = api_tasks(server, "ivy")
    assert task["title"] == "Water the plants"
    wait_for(driver, lambda d: task_titles(d) == ["Water the plants"], "the list to refresh on tasks.changed")
    assert css(driver, f'.task[data-task-id="{task["id"]}"]')
    screenshot(driver, "react-example-self-hosted.png")

    # Hosted: useChatKit({api: {getClientSecret}}) with the page's own module. The first call mints.
    css(driver, 'button.mode[data-mode="hosted"]')[0].click()
    wait_for(driver, lambda d: standin_mode(d) == "hosted" and has_secret(d), "ChatKit in hosted mode")
    assert driver.current_url.endswith("/?mode=hosted")
    assert driver.execute_script("return Object.keys(window.__chatkit.options.api)") == ["getClientSecret"]
    # Feedback and retry as in self-hosted mode; no entities or client tool: OpenAI's servers run
    # the workflow and know nothing of TaskPilot's tasks.
    hosted = driver.execute_script(
        "const o = window.__chatkit.options;"
        "return {actions: o.threadItemActions, entities: 'entities' in o, clientTool: 'onClientTool' in o};"
    )
    assert hosted == {"actions": {"feedback": True, "retry": True}, "entities": False, "clientTool": False}
    (create,) = fake_openai.creates()
    assert create.body["user"] == "ivy"
    first = stored(driver)
    assert first is not None and first["owner"] == "ivy"
    assert secret_calls(driver) == [{"current": None, "secret": first["client_secret"]}]

    # A reload within the lifetime reuses the tab's secret: no new upstream request.
    driver.refresh()
    wait_for(driver, lambda d: standin_mode(d) == "hosted" and has_secret(d), "hosted mode after reload")
    assert len(fake_openai.creates()) == 1
    assert secret_calls(driver) == [{"current": None, "secret": first["client_secret"]}]
    screenshot(driver, "react-example-hosted.png")

    # The expired secret is refreshed; TaskPilot cancels the old session upstream.
    call = expire(driver)
    second = stored(driver)
    assert second is not None and call == {"current": first["client_secret"], "secret": second["client_secret"]}
    assert fake_openai.cancels() == [first["session_id"]]
    assert len(fake_openai.creates()) == 2

    # Errors in words: a refused refresh in the status line (and the given-up secret dropped) ...
    fake_openai.fail(
        "create",
        401,
        body=error_body("Incorrect API key provided.", type_="invalid_request_error", code="invalid_api_key"),
    )
    call = expire(driver)
    assert call["error"].startswith("Bad Gateway: The server's OpenAI credentials were rejected."), call
    status = wait_for(driver, lambda d: d.find_element("css selector", ".status.error"), "the status line")
    assert status.text == call["error"]
    assert stored(driver) is None

    # ... and a failed start as a notice, with Retry counting down OpenAI's Retry-After.
    fake_openai.fail(
        "create", 429, headers={"retry-after": "17"}, body=error_body("Slow down", type_="requests", code="rate_limit")
    )
    driver.refresh()
    text = wait_for(driver, lambda d: d.find_element("css selector", ".notice-text").text, "the notice")
    assert text == "Service Unavailable: OpenAI is rate-limiting this server's ChatKit sessions; retry in 17 seconds."
    retry = css(driver, 'button[data-action="retry"]')[0]
    assert not retry.is_enabled() and retry.text in {"Retry in 17 s", "Retry in 16 s"}
    assert not css(driver, "openai-chatkit"), "a notice, not a blank widget"
    screenshot(driver, "react-example-hosted-error.png")

    # Signing out clears the tab's secret (none is held after the failure: nothing to cancel).
    next(el for el in css(driver, ".user button") if el.text == "Switch user").click()
    wait_for(driver, lambda d: d.find_elements("id", "user-name"), "the sign-in form")
    assert driver.execute_script("return sessionStorage.getItem(arguments[0])", STORAGE_KEY) is None

    assert driver.execute_script("return window.__cspViolations") == []
    assert severe_console_errors(driver, 502, 503) == []


def test_react_example_says_so_when_chatkit_cannot_load(
    live_server_factory: Callable[..., LiveServer],
    browser: Callable[..., Any],
    fake_openai: FakeOpenAI,
    site: StaticSite,
) -> None:
    server = hosted_server(live_server_factory, fake_openai, CORS_ORIGINS=site.url)
    serve_example_against(site, server)
    driver = browser(OFFLINE_RULES)
    driver.get(f"{site.url}/?mode=hosted")
    dev_sign_in(driver, "jo")
    text = wait_for(driver, lambda d: d.find_element("css selector", ".notice-text").text, "the notice")
    assert "could not be loaded from OpenAI's CDN (https://cdn.platform.openai.com)" in text
    assert fake_openai.creates() == [], "no session minted that could not be used"
    css(driver, 'button[data-action="self-hosted"]')[0].click()
    wait_for(driver, lambda d: chat_mode(d) == "self-hosted", "self-hosted mode")
    notice = wait_for(driver, lambda d: d.find_element("css selector", ".notice-text").text, "the notice")
    assert "built-in console" in notice
    assert css(driver, f'.notice a[href="{server.base_url}/"]')
    assert driver.execute_script("return window.__cspViolations") == []


# ---- self-hosted mode: the options the page at `/` gives ChatKit, from the example -------------


def add_task(server: LiveServer, user: str, title: str, **fields: Any) -> dict[str, Any]:
    response = httpx.post(
        f"{server.base_url}/api/tasks", json={"title": title, **fields}, headers=auth_bearer(user, time_zone="UTC")
    )
    response.raise_for_status()
    created: dict[str, Any] = response.json()
    return created


def call_async(driver: Any, script: str, *args: Any) -> Any:
    """Runs `script` (an expression giving a promise, with `args` as `a`) and returns what it resolves."""
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1]; const a = arguments[0];"
        f"Promise.resolve().then(() => {script}).then(done, (e) => done({{error: String(e.message || e)}}));",
        list(args),
    )


def focused_row(driver: Any) -> str | None:
    ids = [el.get_attribute("data-task-id") for el in css(driver, ".task.task-focused")]
    return ids[0] if len(ids) == 1 else None


def test_react_example_self_hosted_has_the_pages_chatkit_options_over_real_http(
    live_server_factory: Callable[..., LiveServer],
    browser: Callable[..., Any],
    fake_cdn: int,
    site: StaticSite,
) -> None:
    server = live_server_factory(
        {
            "MODEL_PROVIDER": "offline",
            "OPENAI_API_KEY": "sk-test-TaskPilotReactKey-0123456789abcdef",  # dictation needs a key; never called here
            "TRANSCRIPTION_MODEL": "gpt-4o-mini-transcribe",
            "MODEL_CHOICES": "gpt-5-mini,gpt-5",
            "ATTACHMENT_MAX_BYTES": "123456",
            "ATTACHMENT_ALLOWED_TYPES": "image/png,text/markdown",
            "CORS_ORIGINS": site.url,
        }
    )
    serve_example_against(site, server)
    # The browser is somewhere whose date is not UTC's right now.
    zone, local_today = zone_on_another_date()
    milk = add_task(server, "kai", "Buy milk", due_date=local_today.isoformat())
    rent = add_task(server, "kai", "Pay rent")
    call = add_task(server, "kai", "Call the plumber")
    httpx.post(
        f"{server.base_url}/api/tasks/{call['id']}/complete", headers=auth_bearer("kai", time_zone="UTC")
    ).raise_for_status()
    add_task(server, "bob", "Buy milk for bob")

    driver = browser(cdn_rules(fake_cdn), insecure_tls=True)
    driver.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": zone})
    driver.get(f"{site.url}/?mode=self-hosted")
    dev_sign_in(driver, "kai")
    wait_for(driver, lambda d: standin_mode(d) == "self-hosted", "ChatKit in self-hosted mode")

    # What health offers: dictation (TRANSCRIPTION_MODEL), the composer's tools and MODEL_CHOICES,
    # and the attachments the server takes (ATTACHMENT_MAX_BYTES, ATTACHMENT_ALLOWED_TYPES).
    options = driver.execute_script(
        "const o = window.__chatkit.options; return {actions: o.threadItemActions, dictation: o.composer.dictation,"
        " tools: o.composer.tools, models: o.composer.models, attachments: o.composer.attachments,"
        " answer: o.onClientTool({name: 'get_time_zone', params: {}})};"
    )
    assert options == {
        "actions": {"feedback": True, "retry": True},
        "dictation": {"enabled": True},
        "tools": [
            {"id": tool.id, "label": tool.label, "icon": tool.icon, "placeholderOverride": tool.placeholder}
            for tool in COMPOSER_TOOLS
        ],
        "models": [
            {"id": "gpt-5-mini", "label": "gpt-5-mini", "default": True},
            {"id": "gpt-5", "label": "gpt-5", "default": False},
        ],
        "attachments": {
            "enabled": True,
            "maxCount": 5,
            "maxSize": 123456,
            "accept": {"image/png": [".png"], "text/markdown": [".md", ".markdown"]},
        },
        "answer": {"time_zone": zone},
    }
    unknown = driver.execute_script(
        "try { window.__chatkit.options.onClientTool({name: 'launch_rockets', params: {}}); return 'answered'; }"
        " catch (e) { return String(e.message); }"
    )
    assert "no client tool named launch_rockets" in unknown

    # The task list's REST calls carry the browser's zone: TaskPilot counts "due today" on kai's date
    # (in UTC the milk would be due yesterday or tomorrow, and count 0).
    summary = wait_for(driver, lambda d: d.find_element("css selector", ".task-summary"), "the summary")
    assert summary.get_attribute("data-today") == local_today.isoformat()
    assert summary.get_attribute("data-due-today") == "1"
    assert sorted(task_titles(driver)) == ["Buy milk", "Pay rent"]

    # @-mentions: the user's tasks from GET /api/tasks?q=, as the page's entities (never bob's).
    found = call_async(driver, "window.__chatkit.options.entities.onTagSearch(a[0])", "milk")
    assert found == [
        {
            "id": milk["id"],
            "title": "Buy milk",
            "group": "Open",
            "icon": "check-circle",
            "interactive": True,
            "data": {"type": "task", "task_id": milk["id"], "number": str(milk["number"])},
        }
    ]
    recent = call_async(driver, "window.__chatkit.options.entities.onTagSearch('')")
    assert {e["id"] for e in recent} == {milk["id"], rent["id"]}  # empty query: the open ones
    (done,) = call_async(driver, "window.__chatkit.options.entities.onTagSearch(a[0])", "plumber")
    assert done["group"] == "Done"

    # A click on an entity focuses its task in the list; a done one switches the list to "All".
    driver.execute_script("window.__chatkit.options.entities.onClick(arguments[0])", found[0])
    wait_for(driver, lambda d: focused_row(d) == milk["id"], "the list to focus the clicked task")
    assert driver.execute_script("return document.activeElement.dataset.taskId") == milk["id"]
    driver.execute_script("window.__chatkit.options.entities.onClick(arguments[0])", done)
    wait_for(driver, lambda d: focused_row(d) == call["id"], "the list to show the done task")
    assert driver.execute_script("return document.activeElement.dataset.taskId") == call["id"]
    assert css(driver, '.filter[data-filter="all"]')[0].get_attribute("aria-pressed") == "true"
    screenshot(driver, "react-example-entities.png")

    # ChatKit's requests carry the zone too: "tomorrow" is kai's tomorrow, and the list marks the
    # task the assistant's `tasks.changed` names.
    result = call_async(driver, "window.__chatkit.send(a[0])", "add a task to buy bread tomorrow")
    assert result.get("status") == 200 and "error" not in result["events"], result
    bread = next(t for t in api_tasks(server, "kai") if t["title"] == "Buy bread")
    assert bread["due_date"] == (local_today + dt.timedelta(days=1)).isoformat()
    wait_for(driver, lambda d: css(d, f'.task.task-changed[data-task-id="{bread["id"]}"]'), "the new task marked")

    # What the composer sends for a chosen entity reaches TaskPilot through the example's fetch:
    # exactly that task is completed.
    tagged = call_async(
        driver,
        "window.__chatkit.send([{type: 'input_text', text: 'mark '},"
        " {type: 'input_tag', id: a[0].id, text: a[0].title, data: a[0].data, interactive: true},"
        " {type: 'input_text', text: ' done'}])",
        found[0],
    )
    assert tagged.get("status") == 200 and "error" not in tagged["events"], tagged
    assert {t["id"]: t["completed"] for t in api_tasks(server, "kai")}[milk["id"]] is True

    assert driver.execute_script("return window.__cspViolations") == []
    assert severe_console_errors(driver) == []


def test_react_example_previews_tasks_offers_slash_commands_and_asks_about_a_task(
    live_server_factory: Callable[..., LiveServer],
    browser: Callable[..., Any],
    fake_cdn: int,
    site: StaticSite,
) -> None:
    server = live_server_factory({"MODEL_PROVIDER": "offline", "CORS_ORIGINS": site.url})
    serve_example_against(site, server)
    milk = add_task(server, "lea", "Buy milk", priority="low", due_date="2026-12-24")
    bobs = add_task(server, "bob", "Buy milk for bob")
    driver = browser(cdn_rules(fake_cdn), insecure_tls=True)
    driver.get(f"{site.url}/?mode=self-hosted")
    dev_sign_in(driver, "lea")
    wait_for(driver, lambda d: standin_mode(d) == "self-hosted", "ChatKit in self-hosted mode")
    wait_for(driver, lambda d: task_titles(d) == ["Buy milk"], "the task list")

    # Hover previews (the page's module): lea's task from GET /api/tasks/{id}; bob's: none.
    (entity,) = call_async(driver, "window.__chatkit.options.entities.onTagSearch('milk')")
    preview = call_async(driver, "window.__chatkit.options.entities.onRequestPreview(a[0])", entity)["preview"]
    assert preview["type"] == "Basic"
    shown = [c.get("label") or c.get("value") for row in preview["children"] for c in row["children"]]
    assert shown == [f"#{milk['number']}", "Buy milk", "Open", "low priority", "Due 2026-12-24"]
    other = {"id": bobs["id"], "title": bobs["title"], "data": {"task_id": bobs["id"]}}
    assert call_async(driver, "window.__chatkit.options.entities.onRequestPreview(a[0])", other) == {"preview": None}

    # "/" commands: the server's composer tools; choosing one selects it through useChatKit.
    listed = call_async(driver, "window.__chatkit.options.commands.onSearch('')")
    assert [(c["id"], c["label"]) for c in listed] == [(tool.id, f"/{tool.command}") for tool in COMPOSER_TOOLS]
    call_async(driver, "window.__chatkit.options.commands.onSelect(a[0])", listed[-1])
    assert driver.execute_script("return window.__chatkit.composerValues") == [{"selectedToolId": listed[-1]["id"]}]

    # The list's "Ask": the task, tagged, in the composer; sent, the server acts on exactly that task.
    css(driver, ".task .task-ask")[0].click()
    wait_for(driver, lambda d: len(d.execute_script("return window.__chatkit.composerValues")) == 2, "the prefill")
    asked = driver.execute_script("return window.__chatkit.composerValues[1]")
    assert [part["type"] for part in asked["content"]] == ["input_tag", "input_text"]
    assert asked["content"][0]["id"] == milk["id"] and asked["content"][0]["text"] == "Buy milk"
    wait_for(driver, lambda d: d.execute_script("return window.__chatkit.composerFocused") == 1, "the focus")
    sent = call_async(
        driver, "window.__chatkit.send([...a[0].content, {type: 'input_text', text: ' mark done'}])", asked
    )
    assert sent.get("status") == 200 and "error" not in sent["events"], sent
    assert {t["id"]: t["completed"] for t in api_tasks(server, "lea")}[milk["id"]] is True
    assert driver.execute_script("return window.__cspViolations") == []
    assert severe_console_errors(driver, 404) == []  # bob's task is not lea's
