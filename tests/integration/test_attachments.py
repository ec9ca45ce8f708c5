"""Attachments in-process: the two-phase flow over HTTP, ownership, limits, sniffing, deletion,
cleanup, signed URLs, and what the model receives (SQLite file and PostgreSQL)."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from chatkit.types import FileAttachment, ImageAttachment, UserMessageItem, UserMessageTextContent

from app.agents.assistant import IMAGE_TOKENS, TaskPilotConverter, estimate_tokens
from app.agents.offline.planner import Reply
from app.core.errors import AuthError, PayloadTooLarge, ServiceUnavailable
from app.services.attachments.blobs import storage_key
from app.services.attachments.content import clean_name, normalize_mime, sniff
from app.services.attachments.service import AttachmentService
from app.services.attachments.signing import UrlSigner
from app.services.maintenance import run_cleanup
from app.settings import Settings, SettingsError
from app.store.db import build_db_config
from tests.conftest import create_schema
from tests.support.attachments import Env, attachments_app, local_path, request_context
from tests.support.payloads import JPEG, NOTES, PDF, PNG
from tests.support.scripted_model import ScriptedModel


@pytest.fixture
async def env(tmp_path: Path, server_database_url: str) -> AsyncIterator[Env]:
    async for value in attachments_app(tmp_path, server_database_url):
        yield value


@pytest.fixture
async def lite(tmp_path: Path) -> AsyncIterator[Env]:
    """SQLite only, for rules that do not depend on the database."""
    async for value in attachments_app(tmp_path, f"sqlite+aiosqlite:///{tmp_path}/lite.db", ATTACHMENT_MAX_BYTES=4096):
        yield value


# ---- the whole flow ---------------------------------------------------------------------------------


async def test_create_upload_send_reload_and_the_model_sees_the_files(tmp_path: Path, server_database_url: str) -> None:
    model = ScriptedModel([Reply("Nice picture and list.")])
    async for env in attachments_app(tmp_path, server_database_url, model):
        image = await env.created("alice", "dot.png", "image/png", len(PNG))
        notes = await env.created("alice", "groceries.md", "text/markdown", len(NOTES))
        assert image["type"] == "image" and notes["type"] == "file"
        for created in (image, notes):
            url = urlsplit(created["upload_descriptor"]["url"])
            assert url.scheme == "http" and url.netloc == "testserver.local"
            assert url.path == f"/api/chatkit/attachments/{created['id']}/upload"
            assert parse_qs(url.query)["token"]
        assert "metadata" not in image

        uploaded = await env.upload(image, PNG, {"Content-Type": "image/png"})
        assert uploaded.status_code == 200, uploaded.text
        info = uploaded.json()
        assert info["status"] == "uploaded" and info["size"] == len(PNG) and info["mime_type"] == "image/png"
        assert (await env.upload(notes, NOTES)).status_code == 200
        assert env.blob("alice", image["id"]).read_bytes() == PNG
        assert env.blob("alice", notes["id"]).read_bytes() == NOTES

        sent = await env.alice.create_thread("What do you make of these?", attachments=[image["id"], notes["id"]])
        assert sent.status == 200 and not sent.of_type("error")
        assert sent.assistant_text() == "Nice picture and list."
        streamed = next(e.item for e in sent.events if e.type == "thread.item.done" and e.item.type == "user_message")
        assert [a.name for a in streamed.attachments] == ["dot.png", "groceries.md"]
        assert all(a.upload_descriptor is None for a in streamed.attachments)

        # The model got the text, then each attachment: a label, and the image itself / the file's text.
        assert model.inputs, "the model was never called"
        user_message = next(i for i in model.inputs[0] if isinstance(i, dict) and i.get("role") == "user")
        parts = user_message["content"]
        assert parts[0] == {"type": "input_text", "text": "What do you make of these?"}
        assert parts[1]["text"] == f"[attachment] dot.png (image/png, {len(PNG)} bytes)"
        assert parts[2] == {
            "type": "input_image",
            "detail": "auto",
            "image_url": "data:image/png;base64," + base64.b64encode(PNG).decode(),
        }
        assert parts[3]["text"] == f"[attachment] groceries.md (text/markdown, {len(NOTES)} bytes):\n{NOTES.decode()}"
        assert len(parts) == 4

        reloaded = await env.alice.get_thread(sent.thread_id)
        assert reloaded.status == 200
        message = next(i for i in reloaded.body["items"]["data"] if i["type"] == "user_message")
        assert [(a["id"], a["name"], a["mime_type"]) for a in message["attachments"]] == [
            (image["id"], "dot.png", "image/png"),
            (notes["id"], "groceries.md", "text/markdown"),
        ]
        assert all("upload_descriptor" not in a and "metadata" not in a for a in message["attachments"])
        preview = await env.http.get(local_path(message["attachments"][0]["preview_url"]))  # an <img> sends no token
        assert preview.status_code == 200
        assert preview.content == PNG and preview.headers["content-type"] == "image/png"
        assert preview.headers["content-disposition"].startswith("inline;")
        assert preview.headers["x-content-type-options"] == "nosniff"

        download = await env.http.get(f"/api/chatkit/attachments/{notes['id']}", headers=env.bearer("alice"))
        assert download.status_code == 200 and download.content == NOTES
        assert download.headers["content-type"] == "text/markdown; charset=utf-8"
        assert download.headers["content-disposition"].startswith("attachment;")


async def test_the_offline_model_acknowledges_attachments_by_name_and_size(lite: Env) -> None:
    notes = await lite.created("alice", "groceries.md", "text/markdown", len(NOTES))
    assert (await lite.upload(notes, NOTES)).status_code == 200
    with_text = await lite.alice.create_thread("hello", attachments=[notes["id"]])
    text = with_text.assistant_text()
    assert text.startswith(f"I received groceries.md ({len(NOTES)} bytes).")
    assert "I manage your tasks" in text  # the greeting still answers what was typed

    image = await lite.created("alice", "dot.png", "image/png", len(PNG))
    assert (await lite.upload(image, PNG)).status_code == 200
    alone = await lite.alice.send(with_text.thread_id, "", attachments=[image["id"]])
    assert alone.status == 200
    assert alone.assistant_text().startswith(f"I received dot.png ({len(PNG)} bytes). As the offline assistant")


async def test_a_message_cannot_use_an_attachment_before_its_upload_or_from_another_thread(lite: Env) -> None:
    pending = await lite.created("alice", "notes.txt", "text/plain", 5)
    refused = await lite.alice.create_thread("see attached", attachments=[pending["id"]])
    assert refused.status == 409 and "not been uploaded" in refused.body["detail"]
    assert refused.events == []

    assert (await lite.upload(pending, b"hello")).status_code == 200
    first = await lite.alice.create_thread("see attached", attachments=[pending["id"]])
    assert first.status == 200
    again = await lite.alice.create_thread("once more", attachments=[pending["id"]])
    assert again.status == 409 and "another thread" in again.body["detail"]


# ---- ownership and signed URLs -----------------------------------------------------------------------


async def test_another_user_cannot_read_upload_to_delete_or_send_an_attachment(env: Env) -> None:
    mine = await env.created("alice", "secret.txt", "text/plain", 6)
    theirs = await env.created("bob", "bob.txt", "text/plain", 3)
    url = f"/api/chatkit/attachments/{mine['id']}"

    # Upload: Bob's bearer token finds nothing; his own signed token is not valid for Alice's attachment.
    as_bob = await env.http.put(f"{url}/upload", content=b"hijack", headers=env.bearer("bob"))
    assert as_bob.status_code == 404
    bob_token = parse_qs(urlsplit(theirs["upload_descriptor"]["url"]).query)["token"][0]
    forged = await env.http.put(f"{url}/upload", params={"token": bob_token}, content=b"hijack")
    assert forged.status_code == 401
    assert not env.blob("alice", mine["id"]).exists() and not env.blob("bob", mine["id"]).exists()

    assert (await env.upload(mine, b"secret")).status_code == 200

    # Read: no credentials, Bob's bearer token, Bob's signed token: all refused.
    assert (await env.http.get(url)).status_code == 401
    assert (await env.http.get(url, headers=env.bearer("bob"))).status_code == 404
    assert (await env.http.get(url, params={"token": bob_token})).status_code == 401
    # Delete and send through ChatKit: 404, like any other user's object.
    deleted = await env.bob.request("attachments.delete", {"attachment_id": mine["id"]})
    assert deleted.status == 404
    sent = await env.bob.create_thread("look", attachments=[mine["id"]])
    assert sent.status == 404

    assert env.blob("alice", mine["id"]).read_bytes() == b"secret"
    owner = await env.http.get(url, headers=env.bearer("alice"))
    assert owner.status_code == 200 and owner.content == b"secret"


async def test_signed_tokens_are_bound_to_purpose_attachment_user_and_time(lite: Env) -> None:
    created = await lite.created("alice", "a.txt", "text/plain", 2)
    token = parse_qs(urlsplit(created["upload_descriptor"]["url"]).query)["token"][0]
    url = f"/api/chatkit/attachments/{created['id']}"
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for bad in (tampered, "not-a-token", token.split(".")[0]):
        response = await lite.http.put(f"{url}/upload", params={"token": bad}, content=b"hi")
        assert response.status_code == 401, bad
        assert response.headers["content-type"].startswith("application/problem+json")
    # An upload token does not read.
    assert (await lite.http.get(url, params={"token": token})).status_code == 401
    # A bearer token, when sent, is what counts (an invalid one is 401 even with a valid signed token).
    refused = await lite.http.put(
        f"{url}/upload", params={"token": token}, content=b"hi", headers={"Authorization": "Bearer nope"}
    )
    assert refused.status_code == 401
    assert (await lite.http.put(f"{url}/upload", content=b"hi", headers=lite.bearer("alice"))).status_code == 200

    now = [1_000_000.0]
    signer = UrlSigner(b"k" * 32, 900, clock=lambda: now[0])
    upload = signer.upload_token("atc_1", "alice")
    read = signer.read_token("atc_1", "alice")
    assert signer.verify(upload, "upload", "atc_1") == "alice"
    assert signer.verify(read, "read", "atc_1") == "alice"
    with pytest.raises(AuthError, match="not valid"):
        signer.verify(upload, "upload", "atc_2")
    with pytest.raises(AuthError, match="not valid"):
        UrlSigner(b"x" * 32, 900, clock=lambda: now[0]).verify(upload, "upload", "atc_1")
    assert signer.read_token("atc_1", "alice") == read  # stable within a window: images stay cached
    now[0] += 901
    with pytest.raises(AuthError, match="expired"):
        signer.verify(upload, "upload", "atc_1")
    assert signer.verify(read, "read", "atc_1") == "alice"  # read tokens live one to two windows
    now[0] += 2 * 900
    with pytest.raises(AuthError, match="expired"):
        signer.verify(read, "read", "atc_1")


async def test_reloaded_preview_urls_are_fresh_and_signed_for_the_owner(lite: Env) -> None:
    image = await lite.created("alice", "dot.png", "image/png", len(PNG))
    assert (await lite.upload(image, PNG)).status_code == 200
    sent = await lite.alice.create_thread("a picture", attachments=[image["id"]])
    store_links = lite.service.store.links
    assert store_links is not None
    stored = (
        await lite.service.store.load_thread_items(sent.thread_id, None, 10, "asc", request_context("alice"))
    ).data
    old_url = next(i for i in stored if isinstance(i, UserMessageItem)).attachments[0]
    assert isinstance(old_url, ImageAttachment)
    original_clock = store_links.signer.clock
    store_links.signer.clock = lambda: original_clock() + 86_400  # a day later: the stored URL has expired
    fresh = (await lite.service.store.load_thread_items(sent.thread_id, None, 10, "asc", request_context("alice"))).data
    new_url = next(i for i in fresh if isinstance(i, UserMessageItem)).attachments[0]
    assert isinstance(new_url, ImageAttachment)
    assert str(new_url.preview_url) != str(old_url.preview_url)
    expired_token = parse_qs(urlsplit(str(old_url.preview_url)).query)["token"][0]
    with pytest.raises(AuthError, match="expired"):
        store_links.signer.verify(expired_token, "read", image["id"])
    fresh_token = parse_qs(urlsplit(str(new_url.preview_url)).query)["token"][0]
    assert store_links.signer.verify(fresh_token, "read", image["id"]) == "alice"


# ---- limits ----------------------------------------------------------------------------------------


async def test_size_limit_at_create_and_at_upload(lite: Env) -> None:
    too_big = await lite.create("alice", "big.txt", "text/plain", 4097)
    assert too_big.status_code == 413
    assert too_big.headers["content-type"].startswith("application/problem+json")
    assert "4 KB" in too_big.json()["detail"]

    created = await lite.created("alice", "small.txt", "text/plain", 4096)
    refused = await lite.upload(created, b"a" * 4097)
    assert refused.status_code == 413
    assert not lite.blob("alice", created["id"]).exists()
    record = await lite.service.store.load_attachment_record(created["id"], request_context("alice"))
    assert record.status == "pending" and record.storage_key is None  # released: the client may retry

    exactly = await lite.upload(created, b"a" * 4096)
    assert exactly.status_code == 200 and exactly.json()["size"] == 4096
    # (A body without Content-Length, cut off while it streams over real HTTP: tests/test_attachments_live.py.)


async def test_the_limit_stops_reading_a_stream_that_announced_no_length(lite: Env) -> None:
    created = await lite.created("alice", "stream.txt", "text/plain", 4096)
    sent: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        for _ in range(100):
            sent.append(1000)
            yield b"a" * 1000

    with pytest.raises(PayloadTooLarge):
        await lite.service.upload(
            created["id"], request_context("alice"), body(), content_type=None, content_length=None
        )
    assert sum(sent) == 5000  # stopped at the first chunk past 4096 bytes, not at the end of the body
    assert not lite.blob("alice", created["id"]).exists()
    record = await lite.service.store.load_attachment_record(created["id"], request_context("alice"))
    assert record.status == "pending" and record.storage_key is None


@pytest.mark.parametrize(
    ("declared", "name", "content", "status", "stored_as"),
    [
        ("image/png", "dot.png", PNG, 200, "image/png"),
        ("image/png", "photo.png", JPEG, 200, "image/jpeg"),  # an image mislabelled by the browser
        ("image/jpg", "photo.jpg", JPEG, 200, "image/jpeg"),
        ("application/pdf", "doc.pdf", PDF, 200, "application/pdf"),
        ("", "notes.md", NOTES, 200, "text/markdown"),  # no type from the browser: guessed from the name
        ("text/csv", "t.csv", b"a,b\n1,2\n", 200, "text/csv"),
        ("text/plain", "empty.txt", b"", 200, "text/plain"),
        ("image/png", "anim.png", b"GIF89a" + b"\x00" * 40, 415, None),  # an image, but GIF is not allowed here
        ("image/png", "doc.png", PDF, 415, None),
        ("image/png", "text.png", b"just text, not an image", 415, None),
        ("application/pdf", "image.pdf", PNG, 415, None),
        ("text/plain", "image.txt", PNG, 415, None),
        ("text/plain", "latin1.txt", "café".encode("latin-1"), 415, None),
        ("text/plain", "nul.txt", b"abc\x00def", 415, None),
    ],
)
async def test_content_is_sniffed_not_trusted(
    tmp_path: Path, declared: str, name: str, content: bytes, status: int, stored_as: str | None
) -> None:
    async for env in attachments_app(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path}/types.db",
        ATTACHMENT_ALLOWED_TYPES="image/png,image/jpeg,application/pdf,text/plain,text/markdown,text/csv",
    ):
        created = await env.created("alice", name, declared, len(content))
        # The header claims something else entirely; only the content counts.
        response = await env.upload(created, content, {"Content-Type": "application/octet-stream"})
        assert response.status_code == status, response.text
        if status == 200:
            assert response.json()["mime_type"] == stored_as
            assert env.blob("alice", created["id"]).read_bytes() == content
            download = await env.http.get(f"/api/chatkit/attachments/{created['id']}", headers=env.bearer("alice"))
            assert download.headers["content-type"].split(";")[0] == stored_as
        else:
            assert response.headers["content-type"].startswith("application/problem+json")
            assert not env.blob("alice", created["id"]).exists()
            record = await env.service.store.load_attachment_record(created["id"], request_context("alice"))
            assert record.status == "pending" and record.storage_key is None


async def test_types_outside_the_allowed_list_are_415_at_create(lite: Env) -> None:
    for mime, name in (("application/zip", "a.zip"), ("text/html", "page.html"), ("image/svg+xml", "x.svg")):
        response = await lite.create("alice", name, mime, 10)
        assert response.status_code == 415, mime
        assert "allowed types" in response.json()["detail"]


async def test_multipart_form_uploads_store_only_the_file(lite: Env) -> None:
    created = await lite.created("alice", "dot.png", "image/png", len(PNG))
    descriptor = created["upload_descriptor"]
    response = await lite.http.put(
        local_path(descriptor["url"]),
        files={"file": ("dot.png", PNG, "image/png")},
        data={"purpose": "chat"},
    )
    assert response.status_code == 200, response.text
    assert lite.blob("alice", created["id"]).read_bytes() == PNG

    other = await lite.created("alice", "x.txt", "text/plain", 3)
    no_file = await lite.http.put(local_path(other["upload_descriptor"]["url"]), files={"note": (None, "no file")})
    assert no_file.status_code == 400 and "'file'" in no_file.json()["detail"]
    assert not lite.blob("alice", other["id"]).exists()


async def test_a_second_upload_is_409_and_keeps_the_first_bytes(lite: Env) -> None:
    created = await lite.created("alice", "a.txt", "text/plain", 5)
    assert (await lite.upload(created, b"first")).status_code == 200
    again = await lite.upload(created, b"second")
    assert again.status_code == 409
    assert lite.blob("alice", created["id"]).read_bytes() == b"first"


# ---- deletion and cleanup -------------------------------------------------------------------------


async def test_attachments_delete_removes_the_bytes(env: Env) -> None:
    created = await env.created("alice", "a.txt", "text/plain", 5)
    assert (await env.upload(created, b"bytes")).status_code == 200
    blob = env.blob("alice", created["id"])
    assert blob.exists()
    deleted = await env.alice.request("attachments.delete", {"attachment_id": created["id"]})
    assert deleted.status == 200
    assert not blob.exists()
    gone = await env.http.get(f"/api/chatkit/attachments/{created['id']}", headers=env.bearer("alice"))
    assert gone.status_code == 404
    # A pending attachment (no bytes yet) deletes too.
    pending = await env.created("alice", "b.txt", "text/plain", 5)
    assert (await env.alice.request("attachments.delete", {"attachment_id": pending["id"]})).status == 200


async def test_thread_deletion_removes_the_bytes(env: Env) -> None:
    first = await env.created("alice", "a.txt", "text/plain", 1)
    second = await env.created("alice", "b.png", "image/png", len(PNG))
    assert (await env.upload(first, b"a")).status_code == 200
    assert (await env.upload(second, PNG)).status_code == 200
    thread = await env.alice.create_thread("two files", attachments=[first["id"], second["id"]])
    keep = await env.created("alice", "keep.txt", "text/plain", 4)
    assert (await env.upload(keep, b"keep")).status_code == 200
    assert env.blob("alice", first["id"]).exists() and env.blob("alice", second["id"]).exists()

    assert (await env.alice.request("threads.delete", {"thread_id": thread.thread_id})).status == 200
    assert not env.blob("alice", first["id"]).exists()
    assert not env.blob("alice", second["id"]).exists()
    assert env.blob("alice", keep["id"]).read_bytes() == b"keep"  # not in that thread


async def test_cleanup_deletes_abandoned_uploads_and_their_blobs(env: Env) -> None:
    # An upload that died mid-way: the row is pending and already names its blob.
    abandoned = await env.created("alice", "a.txt", "text/plain", 5)
    key = storage_key("alice", abandoned["id"])
    assert await env.service.store.claim_upload(abandoned["id"], key, request_context("alice"))

    async def partial() -> AsyncIterator[bytes]:
        yield b"part"

    await env.service.blobs.put(key, partial())
    done = await env.created("alice", "b.txt", "text/plain", 4)
    assert (await env.upload(done, b"done")).status_code == 200

    not_yet = await run_cleanup(env.settings, now=dt.datetime.now(dt.UTC) + dt.timedelta(hours=23))
    assert not_yet["pending_attachments_deleted"] == 0
    assert env.blob("alice", abandoned["id"]).exists()

    report = await run_cleanup(env.settings, now=dt.datetime.now(dt.UTC) + dt.timedelta(hours=25))
    assert report["pending_attachments_deleted"] == 1
    assert report["storage_keys"] == [key]
    assert not env.blob("alice", abandoned["id"]).exists()
    assert env.blob("alice", done["id"]).read_bytes() == b"done"  # uploaded: kept


async def test_retention_deletes_the_blobs_of_expired_threads(tmp_path: Path) -> None:
    async for env in attachments_app(tmp_path, f"sqlite+aiosqlite:///{tmp_path}/ret.db", CHAT_RETENTION_DAYS=1):
        created = await env.created("alice", "a.txt", "text/plain", 1)
        assert (await env.upload(created, b"a")).status_code == 200
        await env.alice.create_thread("old", attachments=[created["id"]])
        report = await run_cleanup(env.settings, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=2))
        assert report["threads_deleted"] == 1 and report["thread_attachments_deleted"] == 1
        assert not env.blob("alice", created["id"]).exists()


# ---- configuration ----------------------------------------------------------------------------------


async def test_without_a_signing_secret_attachments_say_what_to_configure(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "APP_ENV": "production",
            "AUTH_JWKS_URL": "https://auth.example.com/api/auth/jwks",
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/p.db",
            "ATTACHMENT_STORAGE_URL": str(tmp_path / "blobs"),
        }
    )
    service = AttachmentService.from_settings(settings, build_db_config(settings))
    from chatkit.types import AttachmentCreateParams

    with pytest.raises(ServiceUnavailable, match="ATTACHMENT_SIGNING_SECRET"):
        await service.create_attachment(
            AttachmentCreateParams(name="a.txt", size=1, mime_type="text/plain"), request_context("alice")
        )
    configured = settings.replace(attachment_signing_secret=Settings.from_env({}).auth_dev_secret)
    await create_schema(settings.database_url)  # the storage quota counts the user's stored bytes
    public = AttachmentService.from_settings(
        configured.replace(public_base_url="https://tasks.example.com"), build_db_config(configured)
    )
    params = AttachmentCreateParams(name="dir/../a.txt", size=1, mime_type="text/plain")
    attachment = await public.create_attachment(params, request_context("alice"))
    assert isinstance(attachment, FileAttachment) and attachment.name == "a.txt"
    assert attachment.upload_descriptor is not None
    assert str(attachment.upload_descriptor.url).startswith(
        f"https://tasks.example.com/api/chatkit/attachments/{attachment.id}/upload?token="
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"ATTACHMENT_ALLOWED_TYPES": "image/png,application/zip"},
            "ATTACHMENT_ALLOWED_TYPES contains application/zip",
        ),
        ({"ATTACHMENT_STORAGE_URL": "ftp://files/x"}, "ATTACHMENT_STORAGE_URL='ftp://files/x' is invalid"),
        ({"ATTACHMENT_SIGNING_SECRET": "short"}, "ATTACHMENT_SIGNING_SECRET is invalid"),
        ({"ATTACHMENT_MAX_BYTES": "0"}, "ATTACHMENT_MAX_BYTES='0' is invalid"),
        ({"PUBLIC_BASE_URL": "tasks.example.com"}, "PUBLIC_BASE_URL='tasks.example.com' is invalid"),
    ],
)
def test_bad_attachment_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    assert message in str(caught.value)


def test_attachment_setting_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.attachment_max_bytes == 10 * 1024 * 1024
    assert settings.attachment_storage_url == "./var/attachments"
    assert set(settings.attachment_allowed_types) == {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "application/pdf",
        "text/plain",
        "text/markdown",
        "text/csv",
    }
    s3 = Settings.from_env({"ATTACHMENT_STORAGE_URL": "s3://bucket/prefix/"})
    assert s3.attachment_storage_url == "s3://bucket/prefix"


# ---- the pieces ---------------------------------------------------------------------------------------


def test_sniffing_and_names() -> None:
    assert sniff(PNG) == "image/png"
    assert sniff(JPEG) == "image/jpeg"
    assert sniff(b"GIF87a....") == "image/gif"
    assert sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert sniff(PDF) == "application/pdf"
    assert sniff(b"\n\n%PDF-1.7") == "application/pdf"
    assert sniff(b"hello") is None
    assert normalize_mime("Image/JPG; charset=binary") == "image/jpeg"
    assert normalize_mime("", "Report.PDF") == "application/pdf"
    assert normalize_mime("application/octet-stream", "list.csv") == "text/csv"
    assert clean_name("C:\\Users\\me\\evil\u202e.txt") == "evil.txt"
    assert clean_name("../../etc/passwd") == "passwd"
    assert clean_name("\x00\x01") == "attachment"
    assert storage_key("alice", "atc_1").endswith("/atc_1") and "alice" not in storage_key("alice", "atc_1")


class FakeReader:
    def __init__(self, blobs: dict[str, bytes]) -> None:
        self.blobs = blobs
        self.reads: list[tuple[str, int]] = []

    async def read_attachment(self, attachment: Any, limit: int) -> bytes | None:
        self.reads.append((attachment.id, limit))
        data = self.blobs.get(attachment.id)
        return None if data is None else data[:limit]


def _file(attachment_id: str, name: str, mime: str, size: int | None) -> FileAttachment:
    metadata = {"size": size, "storage_key": f"k/{attachment_id}"} if size is not None else None
    return FileAttachment(id=attachment_id, name=name, mime_type=mime, metadata=metadata)


def _image(attachment_id: str, size: int) -> ImageAttachment:
    return ImageAttachment(
        id=attachment_id,
        name="dot.png",
        mime_type="image/png",
        preview_url="http://x/p",  # type: ignore[arg-type]
        metadata={"size": size, "storage_key": f"k/{attachment_id}"},
    )


async def test_converter_gives_the_model_images_text_and_descriptions() -> None:
    long_text = ("line of text ✓\n" * 100).encode()
    large_png = PNG + b"\x00" * 100_000
    reader = FakeReader({"img": PNG, "big": PNG, "txt": long_text, "pdf": PDF, "large": large_png})
    converter = TaskPilotConverter(reader, image_bytes=len(PNG), text_chars=50)

    image = await converter.attachment_parts(_image("img", len(PNG)))
    assert image[0] == {"type": "input_text", "text": f"[attachment] dot.png (image/png, {len(PNG)} bytes)"}
    assert image[1]["type"] == "input_image"
    assert image[1]["image_url"] == "data:image/png;base64," + base64.b64encode(PNG).decode()

    oversized = await converter.attachment_parts(_image("big", len(PNG) + 1))
    assert len(oversized) == 1 and "too large" in oversized[0]["text"]
    assert ("big", len(PNG) + 1) not in reader.reads  # not even read

    text = await converter.attachment_parts(_file("txt", "notes.txt", "text/plain", len(long_text)))
    assert len(text) == 1
    body = text[0]["text"]
    assert body.startswith(f"[attachment] notes.txt (text/plain, {len(long_text)} bytes):\nline of text ✓\n")
    assert body.endswith("[truncated: only the first 50 characters are shown]")
    assert ("txt", 200) in reader.reads  # at most 4 bytes a character of the budget

    pdf = await converter.attachment_parts(_file("pdf", "doc.pdf", "application/pdf", len(PDF)))
    assert pdf == [
        {
            "type": "input_text",
            "text": f"[attachment] doc.pdf (application/pdf, {len(PDF)} bytes): you cannot read this kind of file; "
            "only its name, type and size are known.",
        }
    ]
    pending = await converter.attachment_parts(_file("nope", "later.txt", "text/plain", None))
    assert pending[0]["text"] == "[attachment] later.txt (text/plain, not uploaded): its content is not available."
    vanished = await converter.attachment_parts(_file("gone", "gone.txt", "text/plain", 10))
    assert "not available" in vanished[0]["text"]

    message = UserMessageItem(
        id="msg_1",
        thread_id="thr_1",
        created_at=dt.datetime.now(dt.UTC),
        content=[UserMessageTextContent(text="look at these")],
        attachments=[_image("img", len(PNG)), _file("txt", "notes.txt", "text/plain", len(long_text))],
        inference_options={},  # type: ignore[arg-type]
    )
    converted = await converter.to_agent_input([message])
    assert len(converted) == 1
    parts = converted[0]["content"]  # type: ignore[typeddict-item]
    assert [p["type"] for p in parts] == ["input_text", "input_text", "input_image", "input_text"]
    assert parts[0]["text"] == "look at these"

    # An image costs about IMAGE_TOKENS, however long its data URL: history is not trimmed for it.
    roomy = TaskPilotConverter(reader, image_bytes=len(large_png), text_chars=50)
    with_large = await roomy.to_agent_input(
        [message.model_copy(update={"attachments": [_image("large", len(large_png))]})]
    )
    data_url = with_large[0]["content"][2]["image_url"]  # type: ignore[index,typeddict-item]
    assert len(data_url) > 130_000
    assert IMAGE_TOKENS <= estimate_tokens(with_large) < IMAGE_TOKENS + 100


async def test_refusals_say_what_the_content_is(lite: Env) -> None:
    cases = [
        ("text/plain", "a.txt", PNG, "its content is a PNG image"),
        ("image/png", "b.png", b"plain words", "not a PNG image as declared"),
        ("application/pdf", "c.pdf", JPEG, "its content is a JPEG image"),
        ("text/csv", "d.csv", "naïve;1\n".encode("latin-1"), "is not UTF-8 text"),
    ]
    for declared, name, content, detail in cases:
        created = await lite.created("alice", name, declared, len(content))
        response = await lite.upload(created, content)
        assert response.status_code == 415, name
        assert detail in response.json()["detail"], response.json()["detail"]


async def test_storage_outage_is_a_503_and_never_loses_a_thread_deletion(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from testkit.processes import free_port

    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    async for env in attachments_app(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path}/down.db",
        ATTACHMENT_STORAGE_URL="s3://bucket/prefix",
        ATTACHMENT_S3_ENDPOINT_URL=dead,
        ATTACHMENT_S3_REGION="us-east-1",
        ATTACHMENT_S3_ACCESS_KEY_ID="k",
        ATTACHMENT_S3_SECRET_ACCESS_KEY="s",
    ):
        created = await env.created("alice", "a.txt", "text/plain", 5)
        response = await env.upload(created, b"hello")
        assert response.status_code == 503, response.text
        assert "storage is unavailable" in response.json()["detail"]
        assert response.headers["retry-after"] == "5"
        record = await env.service.store.load_attachment_record(created["id"], request_context("alice"))
        assert record.status == "pending" and record.storage_key is None  # released for a retry

        thread = await env.alice.create_thread("hello")
        stored = await env.service.store.load_attachment(created["id"], request_context("alice"))
        await env.service.store.save_attachment(
            stored.model_copy(update={"thread_id": thread.thread_id}), request_context("alice")
        )
        assert await env.service.store.claim_upload(created["id"], "some/key", request_context("alice"))
        caplog.set_level("ERROR", logger="app.attachments")
        deleted = await env.alice.request("threads.delete", {"thread_id": thread.thread_id})
        assert deleted.status == 200
        assert (await env.alice.get_thread(thread.thread_id)).status == 404
        assert any(getattr(r, "fields", {}).get("storage_keys") == ["some/key"] for r in caplog.records)
