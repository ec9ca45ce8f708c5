"""Attachments on S3-compatible storage: the same flow against a local S3 server (moto, loopback only)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from testkit.processes import free_port

from app.services.attachments.blobs import BlobStorage, storage_key
from app.services.maintenance import run_cleanup
from tests.support.attachments import Env, attachments_app, request_context
from tests.support.payloads import NOTES, PNG

moto_server = pytest.importorskip(
    "moto.server", reason="moto[s3] with flask is a dev dependency (pip install -e '.[dev]')"
)
boto3 = pytest.importorskip("boto3")

BUCKET = "taskpilot-attachments"
PREFIX = "chat"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    _client(endpoint).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


def _client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="test-key",
        aws_secret_access_key="test-secret",
        region_name="us-east-1",
    )


def _objects(endpoint: str) -> dict[str, bytes]:
    client = _client(endpoint)
    listing = client.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/")
    return {
        item["Key"]: client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
        for item in listing.get("Contents", [])
    }


@pytest.fixture
async def s3_env(tmp_path: Path, s3_endpoint: str) -> AsyncIterator[Env]:
    for key in _objects(s3_endpoint):
        _client(s3_endpoint).delete_object(Bucket=BUCKET, Key=key)
    async for env in attachments_app(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path}/s3.db",
        ATTACHMENT_STORAGE_URL=f"s3://{BUCKET}/{PREFIX}",
        ATTACHMENT_S3_ENDPOINT_URL=s3_endpoint,
        ATTACHMENT_S3_REGION="us-east-1",
        ATTACHMENT_S3_ACCESS_KEY_ID="test-key",
        ATTACHMENT_S3_SECRET_ACCESS_KEY="test-secret",
        ATTACHMENT_MAX_BYTES=4096,
    ):
        yield env


async def test_the_flow_on_s3(s3_env: Env, s3_endpoint: str) -> None:
    env = s3_env
    assert BlobStorage.from_settings(env.settings).description == f"s3://{BUCKET}/{PREFIX}"
    image = await env.created("alice", "dot.png", "image/png", len(PNG))
    notes = await env.created("alice", "groceries.md", "text/markdown", len(NOTES))
    assert (await env.upload(image, PNG)).status_code == 200
    assert (await env.upload(notes, NOTES)).status_code == 200
    image_key = f"{PREFIX}/{storage_key('alice', image['id'])}"
    notes_key = f"{PREFIX}/{storage_key('alice', notes['id'])}"
    assert _objects(s3_endpoint) == {image_key: PNG, notes_key: NOTES}

    sent = await env.alice.create_thread("hello", attachments=[image["id"], notes["id"]])
    assert sent.assistant_text().startswith(f"I received dot.png ({len(PNG)} bytes) and groceries.md")
    download = await env.http.get(f"/api/chatkit/attachments/{image['id']}", headers=env.bearer("alice"))
    assert download.status_code == 200 and download.content == PNG

    not_an_image = b"not an image at all"
    refused = await env.created("alice", "fake.png", "image/png", len(not_an_image))  # the declared size
    assert (await env.upload(refused, not_an_image)).status_code == 415
    too_big = await env.created("alice", "big.txt", "text/plain", 10)
    assert (await env.upload(too_big, b"a" * 5000)).status_code == 413
    assert set(_objects(s3_endpoint)) == {image_key, notes_key}  # refused uploads leave nothing

    assert (await env.alice.request("threads.delete", {"thread_id": sent.thread_id})).status == 200
    assert _objects(s3_endpoint) == {}


async def test_cleanup_deletes_abandoned_uploads_on_s3(s3_env: Env, s3_endpoint: str) -> None:
    env = s3_env
    abandoned = await env.created("alice", "a.txt", "text/plain", 4)
    key = storage_key("alice", abandoned["id"])
    assert await env.service.store.claim_upload(abandoned["id"], key, request_context("alice"))

    async def partial() -> AsyncIterator[bytes]:
        yield b"part"

    await env.service.blobs.put(key, partial())
    assert set(_objects(s3_endpoint)) == {f"{PREFIX}/{key}"}
    report = await run_cleanup(env.settings, now=dt.datetime.now(dt.UTC) + dt.timedelta(hours=25))
    assert report["storage_keys"] == [key]
    assert _objects(s3_endpoint) == {}
