"""The app in-process with attachments on: two signed-in users, the blob directory, the service, and
the upload steps a ChatKit client takes (create, then PUT to the signed URL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from litestar.testing import AsyncTestClient

from app.asgi import create_app
from app.core.context import RequestContext
from app.http.auth import mint_dev_token
from app.services.attachments.blobs import storage_key
from app.services.attachments.service import AttachmentService
from app.settings import Settings
from app.store.db import build_db_config
from tests.conftest import create_schema, make_settings
from tests.support.chatkit_client import ChatKitClient
from tests.support.scripted_model import ScriptedModel, ScriptedProvider


@dataclass
class Env:
    http: httpx.AsyncClient
    settings: Settings
    blob_dir: Path
    alice: ChatKitClient
    bob: ChatKitClient
    service: AttachmentService
    model: ScriptedModel | None

    def bearer(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {mint_dev_token(self.settings, user)}"}

    def blob(self, user: str, attachment_id: str) -> Path:
        return self.blob_dir / storage_key(user, attachment_id)

    async def create(self, user: str, name: str, mime_type: str, size: int) -> httpx.Response:
        return await self.http.post(
            "/chatkit",
            json={"type": "attachments.create", "params": {"name": name, "size": size, "mime_type": mime_type}},
            headers=self.bearer(user),
        )

    async def created(self, user: str, name: str, mime_type: str, size: int) -> dict[str, Any]:
        response = await self.create(user, name, mime_type, size)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def upload(
        self, attachment: dict[str, Any], content: Any, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """PUT exactly as the descriptor says: its URL (signed), method and headers; no bearer token."""
        descriptor = attachment["upload_descriptor"]
        assert descriptor["method"] == "PUT"
        return await self.http.put(
            local_path(descriptor["url"]), content=content, headers={**descriptor["headers"], **(headers or {})}
        )


def local_path(url: str) -> str:
    """The path and query of an absolute URL (the test client speaks to the app in-process)."""
    parts = urlsplit(url)
    assert parts.scheme == "http" and parts.netloc == "testserver.local", url
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


async def attachments_app(
    tmp_path: Path, database_url: str, model: ScriptedModel | None = None, **overrides: Any
) -> AsyncIterator[Env]:
    blob_dir = tmp_path / "blobs"
    overrides = {"ATTACHMENT_STORAGE_URL": str(blob_dir), **overrides}
    settings = make_settings(tmp_path, DATABASE_URL=database_url, **overrides)
    await create_schema(settings.database_url)
    app = create_app(settings, model_provider=ScriptedProvider(model) if model else None)
    async with AsyncTestClient(app) as client:
        yield Env(
            http=client,
            settings=settings,
            blob_dir=blob_dir,
            alice=ChatKitClient(client, mint_dev_token(settings, "alice")),
            bob=ChatKitClient(client, mint_dev_token(settings, "bob")),
            service=AttachmentService.from_settings(settings, build_db_config(settings)),
            model=model,
        )


def request_context(user: str) -> RequestContext:
    return RequestContext(user_id=user, base_url="http://testserver.local")
