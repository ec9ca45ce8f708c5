"""Headless Chromium for the browser tests, and a stand-in for ChatKit's CDN.

- `browser(resolver_rules)` opens Debian's Chromium through Debian's chromedriver (selenium; never
  a downloaded browser). By default it can reach nothing but 127.0.0.1 (`--host-resolver-rules`),
  so ChatKit's CDN script fails to load exactly as on an offline network.
- `fake_cdn` serves `tests/support/chatkit_standin.js` for ChatKit's CDN host name over local TLS; map
  the host to it with `cdn_rules(port)`. The stand-in is not ChatKit: it makes the calls the real
  web component makes into our code (see the file's header), nothing more. In production the real
  component is loaded from OpenAI's CDN.

Without Chromium, chromedriver or selenium the tests are skipped with the reason, except under CI
(`CI=true`), where they fail.
"""

from __future__ import annotations

import contextlib
import json
import os
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from app.http.auth import mint_dev_token
from app.settings import Settings
from tests.support.auth import bearer
from tests.support.http_thread import serve_in_thread
from tests.support.servers import PROJECT_ROOT, LiveServer
from tests.support.tls import self_signed

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
ARTIFACTS = Path(os.environ.get("TASKPILOT_ARTIFACTS", Path(__file__).parents[1] / "artifacts"))
CDN_HOST = "cdn.platform.openai.com"
OFFLINE_RULES = "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
WAIT = 20.0

# Installed before any page script runs (DevTools scripts are not subject to the page's CSP).
RECORD_CSP_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
});
"""

STATIC_DIR = PROJECT_ROOT / "src" / "app" / "static"  # the page's files
STANDIN_PATH = Path(__file__).parent / "chatkit_standin.js"
STANDIN_JS = STANDIN_PATH.read_bytes()


def cdn_rules(port: int) -> str:
    """Resolver rules: ChatKit's CDN host is the local stand-in on `port`; nothing else but 127.0.0.1."""
    return f"MAP {CDN_HOST} 127.0.0.1:{port}, {OFFLINE_RULES}"


def require_browser() -> Any:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package (pip install -e '.[dev]')")
    if missing:
        reason = (
            f"headless Chromium is not available: {', '.join(missing)} missing "
            "(apt-get install chromium chromium-driver)"
        )
        if IN_CI:
            pytest.fail(f"{reason}; CI must run the browser tests", pytrace=False)
        pytest.skip(reason)


@dataclass
class BrowserPool:
    """One headless Chromium per kind (resolver rules, TLS leniency) for the whole test process.

    Starting Chromium and chromedriver costs about as much as a test; a test borrows one instead and
    gets it back as new: on `about:blank`, no time-zone override, the default window size, one
    window, and neither cookies nor storage of any origin it opened (`driver.get` is recorded).
    """

    drivers: dict[tuple[str, bool], Any] = field(default_factory=dict)
    origins: dict[int, set[str]] = field(default_factory=dict)

    def borrow(self, resolver_rules: str, insecure_tls: bool) -> Any:
        key = (resolver_rules, insecure_tls)
        driver = self.drivers.get(key)
        if driver is None:
            driver = self.drivers[key] = _launch(resolver_rules, insecure_tls)
            self._record_origins(driver)
        driver.get_log("browser")  # what an earlier test left in the console is not this test's
        return driver

    def _record_origins(self, driver: Any) -> None:
        origins = self.origins.setdefault(id(driver), set())
        navigate = driver.get

        def get(url: str) -> None:
            parts = urlsplit(url)
            if parts.scheme in {"http", "https"}:
                origins.add(f"{parts.scheme}://{parts.netloc}")
            navigate(url)

        driver.get = get

    def give_back(self, driver: Any) -> None:
        try:
            handles = driver.window_handles
            for handle in handles[1:]:
                driver.switch_to.window(handle)
                driver.close()
            driver.switch_to.window(handles[0])
            driver.get("about:blank")
            driver.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": ""})
            driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
            for origin in self.origins.get(id(driver), set()):
                driver.execute_cdp_cmd("Storage.clearDataForOrigin", {"origin": origin, "storageTypes": "all"})
            self.origins.get(id(driver), set()).clear()
            driver.set_window_size(*WINDOW_SIZE)
        except Exception:  # a browser a test broke is not lent again
            self.drivers = {k: v for k, v in self.drivers.items() if v is not driver}
            with contextlib.suppress(Exception):
                driver.quit()

    def close(self) -> None:
        for driver in self.drivers.values():
            with contextlib.suppress(Exception):
                driver.quit()
        self.drivers.clear()


WINDOW_SIZE = (1360, 860)


def _launch(resolver_rules: str, insecure_tls: bool) -> Any:
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never download anything
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        f"--window-size={WINDOW_SIZE[0]},{WINDOW_SIZE[1]}",
        "--lang=en-US",
        f"--host-resolver-rules={resolver_rules}",
    ):
        options.add_argument(argument)
    if insecure_tls:
        options.accept_insecure_certs = True
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_CSP_VIOLATIONS})
    return driver


@pytest.fixture(scope="session")
def browser_pool() -> Iterator[BrowserPool]:
    pool = BrowserPool()
    yield pool
    pool.close()


@pytest.fixture
def browser(browser_pool: BrowserPool) -> Iterator[Callable[..., Any]]:
    """`browser(resolver_rules)` lends a headless Chromium of the process's pool; it is reset when the
    test ends."""
    require_browser()
    lent: list[Any] = []

    def open_browser(resolver_rules: str = OFFLINE_RULES, *, insecure_tls: bool = False) -> Any:
        driver = browser_pool.borrow(resolver_rules, insecure_tls)
        if driver in lent:
            raise AssertionError("a test borrows one browser of each kind; it asked for the same kind twice")
        lent.append(driver)
        return driver

    yield open_browser
    for driver in lent:
        browser_pool.give_back(driver)


def wait_for(driver: Any, condition: Callable[[Any], Any], what: str, timeout: float = WAIT) -> Any:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.05, ignored_exceptions=(Exception,)).until(condition)
    except TimeoutException:
        text = driver.find_element("tag name", "body").text
        raise AssertionError(f"timed out waiting for {what}; the page shows:\n{text}") from None


def css(driver: Any, selector: str) -> list[Any]:
    return list(driver.find_elements("css selector", selector))


def texts(driver: Any, selector: str) -> list[str]:
    return [str(el.text) for el in css(driver, selector)]


def severe_console_errors(driver: Any, *expected_statuses: int) -> list[str]:
    """Browser console errors, except the failed load of ChatKit's CDN script and the HTTP
    statuses a test provoked on purpose (Chromium logs every non-2xx response as an error)."""
    return [
        entry["message"]
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE"
        and CDN_HOST not in entry["message"]
        and not any(f"status of {status} " in entry["message"] for status in expected_statuses)
    ]


def ready(driver: Any) -> bool:
    """The page at `/` has finished starting (its root's `data-ready`)."""
    return bool(driver.execute_script("return document.getElementById('taskpilot-app').dataset.ready === 'true'"))


def sign_in(driver: Any, user: str) -> None:
    field = wait_for(driver, lambda d: d.find_element("id", "tp-user-name"), "the development sign-in form")
    field.send_keys(user)
    field.submit()
    wait_for(driver, ready, "the page to start after signing in")


def screenshot(driver: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


@pytest.fixture(scope="session")
def fake_cdn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """An HTTPS server on 127.0.0.1 answering for ChatKit's CDN with the stand-in web component (one
    per test process, so the resolver rules naming its port, and the browser launched with them, are
    shared too)."""
    tmp_path = tmp_path_factory.mktemp("fake-cdn")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] == "/deployments/chatkit/chatkit.js":
                self.send_response(200)
                self.send_header("Content-Type", "text/javascript")
                self.send_header("Content-Length", str(len(STANDIN_JS)))
                self.end_headers()
                self.wfile.write(STANDIN_JS)
            else:
                self.send_error(404)

        def log_message(self, *args: Any) -> None:
            return

    cert, key = self_signed(CDN_HOST, tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    serve_in_thread(httpd)
    yield int(httpd.server_address[1])
    httpd.shutdown()
    httpd.server_close()


def api_add_task(server: LiveServer, user: str, title: str) -> dict[str, Any]:
    """A task made through REST as `user` (what the page then shows)."""
    response = httpx.post(f"{server.base_url}/api/tasks", json={"title": title}, headers=bearer(user, time_zone="UTC"))
    response.raise_for_status()
    created: dict[str, Any] = response.json()
    return created


def api_tasks(server: LiveServer, user: str) -> list[dict[str, Any]]:
    token = mint_dev_token(Settings.from_env({}), user)
    response = httpx.get(
        f"{server.base_url}/api/tasks", params={"status": "all"}, headers={"Authorization": f"Bearer {token}"}
    )
    response.raise_for_status()
    items: list[dict[str, Any]] = response.json()["items"]
    return items


# ---- hosted mode: what the page or the example holds, and what the stand-in was given ---------

WORKFLOW_ID = "wf_6946b383d368819081b556e6e5fa66330d48d0c9ea4fccd8"
STORAGE_KEY = "taskpilot.chatkit.hosted-session"  # hosted-session.js


def hosted_server(live_server_factory: Callable[..., LiveServer], fake: Any, **overrides: str) -> LiveServer:
    """A live TaskPilot whose hosted sessions come from `fake` (a `tests.support.fake_openai.FakeOpenAI`)."""
    return live_server_factory(
        {
            "MODEL_PROVIDER": "offline",
            "LOG_LEVEL": "debug",
            "OPENAI_API_KEY": fake.api_key,
            "OPENAI_BASE_URL": fake.base_url,
            "CHATKIT_WORKFLOW_ID": WORKFLOW_ID,
            **overrides,
        }
    )


def stored(driver: Any) -> dict[str, Any] | None:
    raw = driver.execute_script("return window.sessionStorage.getItem(arguments[0])", STORAGE_KEY)
    return json.loads(raw) if raw else None


def secret_calls(driver: Any) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = driver.execute_script("return window.__chatkit ? window.__chatkit.secretCalls : []")
    return calls


def expire(driver: Any) -> dict[str, Any]:
    """What ChatKit does when its secret expires: getClientSecret(current)."""
    call: dict[str, Any] = driver.execute_async_script(
        "const done = arguments[arguments.length - 1]; window.__chatkit.expire().then(done);"
    )
    return call


def has_secret(driver: Any) -> bool:
    return bool(driver.execute_script("return Boolean(window.__chatkit && window.__chatkit.clientSecret)"))
