"""The page at `/` (served as files, CSP-friendly), its assets, and the development token route.

The browser tests (tests/browser/test_frontend_browser.py) drive the page itself; these check what a
server must answer for it without a browser.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.__main__ import render_openapi
from app.asgi import create_app
from app.controllers.pages import STATIC_DIR, page_csp
from app.http.auth import TokenVerifier
from app.settings import Settings
from app.store.models import Base
from tests.conftest import make_settings

PROBLEM = "application/problem+json"
CDN = "https://cdn.platform.openai.com"
JWT_SECRET = "s" * 40


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[AsyncTestClient[Litestar], Settings]]:
    settings = make_settings(tmp_path)
    app = create_app(settings)
    async with app.state.services.db_config.get_engine().begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    async with AsyncTestClient(app) as test_client:
        yield test_client, settings


class PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.inline_code: list[str] = []
        self.metas: dict[str, str] = {}
        self.links: list[str] = []
        self.inline_styles: list[str] = []
        self.handlers: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script":
            self.scripts.append(attributes)
            self._in_script = True
        if tag == "meta" and attributes.get("name"):
            self.metas[str(attributes["name"])] = attributes.get("content") or ""
        if tag == "link" and attributes.get("href"):
            self.links.append(str(attributes["href"]))
        if tag == "style" or "style" in attributes:
            self.inline_styles.append(tag)
        self.handlers += [f"{tag}.{name}" for name in attributes if name.startswith("on")]

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_code.append(data)


def parse_page(text: str) -> PageParser:
    parser = PageParser()
    parser.feed(text)
    return parser


def csp_directives(header: str) -> dict[str, list[str]]:
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


async def test_page_is_files_only_under_a_csp_that_allows_chatkit(client) -> None:
    test_client, settings = client
    response = await test_client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    csp = csp_directives(response.headers["content-security-policy"])
    assert response.headers["content-security-policy"] == page_csp(settings)
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'", CDN], "no inline script, no eval"
    assert csp["frame-src"] == [CDN]
    assert csp["connect-src"] == ["'self'", CDN]
    assert csp["object-src"] == ["'none'"] and csp["base-uri"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"]

    page = parse_page(response.text)
    assert page.inline_code == [], "every script is a file"
    assert page.inline_styles == [] and page.handlers == []
    sources = [s.get("src") for s in page.scripts]
    assert sources == ["/static/boot.js", f"{CDN}/deployments/chatkit/chatkit.js", "/static/app.js"]
    chatkit_tag = page.scripts[1]
    assert "async" in chatkit_tag and "data-chatkit" in chatkit_tag, "loaded the way ChatKit's docs show"
    assert page.scripts[2].get("type") == "module"
    assert page.metas["chatkit-domain-key"] == "" and page.metas["taskpilot-token-url"] == ""


def _module_imports(path: Path) -> list[str]:
    return re.findall(r'^\s*import\s[^;]*?from\s+"(\./[^"]+)";', path.read_text(), flags=re.M)


async def test_every_asset_the_page_and_its_modules_load_is_served(client) -> None:
    test_client, _ = client
    wanted: list[str] = []
    for path in ("/", "/schema"):  # the chat page, and the reference UI's starter script
        page = parse_page((await test_client.get(path)).text)
        wanted += [s["src"] for s in page.scripts if s.get("src", "").startswith("/static/")] + [  # type: ignore[union-attr]
            href for href in page.links if href.startswith("/static/")
        ]
    seen: set[str] = set()
    while wanted:
        url = str(wanted.pop())
        if url in seen:
            continue
        seen.add(url)
        response = await test_client.get(url)
        assert response.status_code == 200, url
        kind = response.headers["content-type"]
        if url.endswith(".js"):
            assert kind.split(";")[0] in {"text/javascript", "application/javascript"}, (url, kind)
            wanted += [f"/static/{name[2:]}" for name in _module_imports(STATIC_DIR / url.removeprefix("/static/"))]
        elif url.endswith(".css"):
            assert kind.startswith("text/css")
        assert "no-cache" in response.headers["cache-control"]
    served = {url.removeprefix("/static/") for url in seen}
    on_disk = {p.name for p in STATIC_DIR.iterdir() if p.suffix in {".js", ".css"}}
    assert served == on_disk | {"favicon.svg"}, "every file is loaded and every load is a file"
    missing = await test_client.get("/static/nope.js")
    assert missing.status_code == 404


def test_static_files_have_no_inline_styles_or_html_injection() -> None:
    for path in STATIC_DIR.glob("*.js"):
        source = path.read_text()
        assert ".innerHTML" not in source and "insertAdjacentHTML" not in source, path.name
        assert 'setAttribute("style"' not in source and ".style." not in source, path.name
        assert "eval(" not in source and "new Function" not in source, path.name


async def test_settings_fill_the_page_and_widen_connect_src_for_the_token_url(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        AUTH_MODE="jwt",
        AUTH_JWT_SECRET=JWT_SECRET,
        CHATKIT_DOMAIN_KEY='domain_pk_"quoted"<x>',
        AUTH_TOKEN_URL="https://app.example.com/api/auth/token",
    )
    async with AsyncTestClient(create_app(settings)) as test_client:
        response = await test_client.get("/")
    page = parse_page(response.text)
    assert page.metas["chatkit-domain-key"] == 'domain_pk_"quoted"<x>'
    assert 'content="domain_pk_&quot;quoted&quot;&lt;x&gt;"' in response.text, "escaped, not injected"
    assert page.metas["taskpilot-token-url"] == "https://app.example.com/api/auth/token"
    csp = csp_directives(response.headers["content-security-policy"])
    assert csp["connect-src"] == ["'self'", CDN, "https://app.example.com"]


async def test_dev_token_route_mints_a_token_the_api_accepts(client) -> None:
    test_client, settings = client
    response = await test_client.post("/api/dev/token", json={"user_id": "alice@example.com"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"token", "token_type", "user_id", "expires_at"}
    assert body["token_type"] == "Bearer" and body["user_id"] == "alice@example.com"
    context = await TokenVerifier(settings).verify(body["token"])
    assert context.user_id == "alice@example.com"
    assert body["expires_at"].replace("+00:00", "Z").endswith("Z")
    assert context.claims["exp"] - context.claims["iat"] == 12 * 3600

    tasks = await test_client.get("/api/tasks", headers={"Authorization": f"Bearer {body['token']}"})
    assert tasks.status_code == 200 and tasks.json()["items"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_id": "bad name"}, "user_id"),
        ({"user_id": ""}, "user_id"),
        ({"user_id": "-leading-dash"}, "user_id"),
        ({"user_id": "x" * 65}, "user_id"),
        ({}, "user_id"),
        ({"user_id": "alice", "admin": True}, "admin"),
    ],
)
async def test_dev_token_route_refuses_bad_input_as_problem_json(client, body: dict[str, Any], field: str) -> None:
    test_client, _ = client
    response = await test_client.post("/api/dev/token", json=body)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    problem = response.json()
    assert {error["field"] for error in problem["errors"]} == {field}
    assert "token" not in problem


@pytest.mark.parametrize(
    "env",
    [
        {"APP_ENV": "production", "AUTH_JWT_SECRET": JWT_SECRET},
        {"APP_ENV": "development", "AUTH_MODE": "jwt", "AUTH_JWT_SECRET": JWT_SECRET},
    ],
    ids=["production", "development-with-jwt"],
)
async def test_dev_token_route_does_not_exist_without_dev_auth(tmp_path: Path, env: dict[str, str]) -> None:
    settings = make_settings(tmp_path, **env)
    assert settings.auth_mode == "jwt"
    app = create_app(settings)
    assert not [route for route in app.routes if route.path.startswith("/api/dev")]
    async with AsyncTestClient(app) as test_client:
        response = await test_client.post("/api/dev/token", json={"user_id": "alice"})
        assert response.status_code == 404
        assert "No route matches" in response.json()["detail"]
        page = await test_client.get("/")
        assert page.status_code == 200, "the page itself is served in every mode"


def test_openapi_documents_the_dev_token_route_but_not_the_page() -> None:
    spec = json.loads(render_openapi())
    operation = spec["paths"]["/api/dev/token"]["post"]
    assert operation["operationId"] == "CreateDevelopmentToken"
    assert operation["tags"] == ["Development"]
    assert "security" not in operation or operation["security"] in ([], [{}])
    assert "400" in operation["responses"]
    assert "/" not in spec["paths"]
    assert not [path for path in spec["paths"] if path.startswith("/static")]
