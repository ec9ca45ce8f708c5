"""Dictation (`input.transcribe`) through a real server process and a local fake of OpenAI's
transcription API over real HTTP: the audio reaches the API as a multipart upload, bad audio is
refused before anything is sent upstream, and upstream failures map as other OpenAI calls do."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from testkit.processes import free_port

from tests.live.test_token_usage import tokens_counted
from tests.support.auth import server_token
from tests.support.chatkit_client import ChatKitClient
from tests.support.fake_transcription import DURATION, TOKENS, FakeTranscription
from tests.support.haproxy import haproxy_binary, start_haproxy
from tests.support.production import listening_workers
from tests.support.servers import LiveServer, run_cli, unique_user

KEY = "sk-dictation-test-0123456789abcdef"
MODEL = "gpt-4o-mini-transcribe"
AUDIO = b"\x1aE\xdf\xa3" + bytes(range(256)) * 8  # a webm (EBML) header and some bytes


@pytest.fixture
def fake() -> Iterator[FakeTranscription]:
    server = FakeTranscription(KEY)
    yield server
    server.stop()


def _dictation_env(base_url: str, **extra: str) -> dict[str, str]:
    return {
        "TRANSCRIPTION_MODEL": MODEL,
        "OPENAI_API_KEY": KEY,
        "OPENAI_BASE_URL": base_url,
        "MODEL_PROVIDER": "offline",  # the chat model plays no part here
        "OPENAI_TIMEOUT_SECONDS": "2",
        **extra,
    }


def _headers(server: LiveServer, user: str = "alice") -> dict[str, str]:
    return {"Authorization": f"Bearer {server_token(server.env, user)}"}


def _transcribe(audio_base64: str, mime_type: str = "audio/webm;codecs=opus") -> dict[str, Any]:
    return {"type": "input.transcribe", "params": {"audio_base64": audio_base64, "mime_type": mime_type}}


def _encoded(data: bytes = AUDIO) -> str:
    return base64.b64encode(data).decode()


async def test_dictation_transcribes_through_the_openai_api(live_server_factory, fake: FakeTranscription) -> None:
    # MAX_REQUEST_BYTES below the audio: /chatkit still takes input.transcribe up to TRANSCRIPTION_MAX_BYTES.
    server = live_server_factory(
        _dictation_env(fake.base_url, MAX_REQUEST_BYTES="65536", TRANSCRIPTION_MAX_BYTES="300000")
    )
    long_audio = AUDIO * 60  # ~123 KB of audio, ~164 KB as base64
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30, headers=_headers(server)) as http:
        health = (await http.get("/api/chatkit/health")).json()
        assert health["self_hosted"]["dictation"] is True

        response = await http.post("/chatkit", json=_transcribe(_encoded()))
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/json")
        assert response.json() == {"text": fake.text}

        response = await http.post("/chatkit", json=_transcribe(_encoded(long_audio), "audio/mp4"))
        assert response.status_code == 200, response.text

        # Every other request type is still held to MAX_REQUEST_BYTES.
        oversized = {"type": "threads.list", "params": {"limit": 10}, "metadata": {"pad": "x" * 70_000}}
        response = await http.post("/chatkit", json=oversized)
        assert response.status_code == 413, response.text
        assert "MAX_REQUEST_BYTES" in response.json()["detail"]

    first, second = fake.uploads
    assert first.model == MODEL and first.data == AUDIO
    assert first.filename == "dictation.webm" and first.content_type == "audio/webm"
    assert first.authorization == f"Bearer {KEY}"
    assert second.data == long_audio and second.filename == "dictation.mp4"
    assert KEY not in server.log()


async def test_bad_audio_is_refused_before_anything_is_sent(live_server_factory, fake: FakeTranscription) -> None:
    server = live_server_factory(_dictation_env(fake.base_url, TRANSCRIPTION_MAX_BYTES="2048"))
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30, headers=_headers(server)) as http:
        too_big = await http.post("/chatkit", json=_transcribe(_encoded(bytes(2049))))
        assert too_big.status_code == 413, too_big.text
        assert too_big.headers["content-type"].startswith("application/problem+json")
        problem = too_big.json()
        assert problem["errors"][0]["field"] == "params.audio_base64"
        assert "TRANSCRIPTION_MAX_BYTES" in problem["detail"]

        wrong_type = await http.post("/chatkit", json=_transcribe(_encoded(), "video/quicktime"))
        assert wrong_type.status_code == 415, wrong_type.text
        assert wrong_type.headers["content-type"].startswith("application/problem+json")
        assert wrong_type.json()["errors"][0]["field"] == "params.mime_type"

        for malformed in ("not base64!", "QUJD*", "QUJDRA="):
            bad = await http.post("/chatkit", json=_transcribe(malformed))
            assert bad.status_code == 400, (malformed, bad.text)
            assert bad.headers["content-type"].startswith("application/problem+json")
            assert bad.json()["errors"][0]["field"] == "params.audio_base64"

        # Exactly the limit is accepted.
        assert (await http.post("/chatkit", json=_transcribe(_encoded(bytes(2048)), "audio/wav"))).status_code == 200
    assert len(fake.uploads) == 1


async def test_upstream_failures_map_like_other_openai_calls(live_server_factory, fake: FakeTranscription) -> None:
    server = live_server_factory(_dictation_env(fake.base_url))
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30, headers=_headers(server)) as http:
        fake.fail(401)
        rejected = await http.post("/chatkit", json=_transcribe(_encoded()))
        assert rejected.status_code == 502, rejected.text
        assert rejected.headers["content-type"].startswith("application/problem+json")
        detail = rejected.json()["detail"]
        assert "OPENAI_API_KEY" in detail
        assert "Incorrect API key" not in rejected.text and KEY[-4:] not in rejected.text

        fake.fail(500)
        assert (await http.post("/chatkit", json=_transcribe(_encoded()))).status_code == 502

        fake.hang(10)
        started = time.monotonic()
        timed_out = await http.post("/chatkit", json=_transcribe(_encoded()))
        elapsed = time.monotonic() - started
        assert timed_out.status_code == 504, timed_out.text
        assert "OPENAI_TIMEOUT_SECONDS" in timed_out.json()["detail"]
        assert elapsed < 5, elapsed  # OPENAI_TIMEOUT_SECONDS=2, and no retry
    log = server.log()
    assert KEY not in log and KEY[-4:] not in log and "Incorrect API key" not in log
    assert _encoded()[:40] not in log


async def test_unreachable_transcription_api_is_502_which_no_balancer_resends(live_server_factory) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = live_server_factory(_dictation_env(f"http://127.0.0.1:{port}/v1"))
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30, headers=_headers(server)) as http:
        response = await http.post("/chatkit", json=_transcribe(_encoded()))
    # Not 503: a dropped connection may have delivered the audio, and a 503 is re-sent (deploy/haproxy.cfg).
    assert response.status_code == 502, response.text
    assert "OPENAI_BASE_URL" in response.json()["detail"]


async def test_without_a_transcription_model_dictation_is_501_and_off(
    live_server_factory, fake: FakeTranscription
) -> None:
    server = live_server_factory({"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": fake.base_url, "MODEL_PROVIDER": "offline"})
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30, headers=_headers(server)) as http:
        assert (await http.get("/api/chatkit/health")).json()["self_hosted"]["dictation"] is False
        response = await http.post("/chatkit", json=_transcribe(_encoded()))
        assert response.status_code == 501, response.text
        assert "TRANSCRIPTION_MODEL" in response.json()["detail"]
        # Even malformed audio: the feature is off, so that is what the caller hears.
        assert (await http.post("/chatkit", json=_transcribe("not base64!"))).status_code == 501
    assert fake.uploads == []


async def test_dictation_counts_against_the_users_chat_rate_limit(live_server_factory, fake: FakeTranscription) -> None:
    # Every transcription is a paid upstream call: a user cannot send them without bound.
    server = live_server_factory(_dictation_env(fake.base_url, RATE_LIMIT_CHAT_PER_MINUTE="2"))
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30, headers=_headers(server)) as http:
        statuses = [(await http.post("/chatkit", json=_transcribe(_encoded()))).status_code for _ in range(3)]
        refused = await http.post("/chatkit", json=_transcribe(_encoded()))
    assert statuses == [200, 200, 429]
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert len(fake.uploads) == 2  # the refused ones never reached OpenAI


@pytest.mark.timeout(180)
async def test_haproxy_never_sends_a_dictation_to_openai_twice(
    live_server_factory, fake: FakeTranscription, tmp_path: Path
) -> None:
    """Behind deploy/haproxy.cfg (`retry-on conn-failure empty-response 503`): neither OpenAI refusing a
    dictation (rate limit) nor the worker dying while OpenAI transcribes makes HAProxy send the
    audio again. Each upload is a paid call."""
    binary = haproxy_binary()
    server = live_server_factory(_dictation_env(fake.base_url, OPENAI_TIMEOUT_SECONDS="30"))
    port = free_port()
    haproxy = start_haproxy(binary, port, server, server, tmp_path / "haproxy.log")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60, headers=_headers(server)) as http:
            # OpenAI's rate limit: the call reached it, so the answer must not be a 503 HAProxy re-sends.
            fake.fail(429, times=4)
            refused = await http.post("/chatkit", json=_transcribe(_encoded()))
            assert refused.status_code == 502, refused.text
            assert len(fake.uploads) == 1

            # The worker dies while OpenAI holds the upload: HAProxy sees an empty response. (On a new
            # connection: on a reused one HAProxy closes it without an answer, for the client to retry.)
            fake.hang(3)
            fresh = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60, headers=_headers(server))
            sending = asyncio.create_task(fresh.post("/chatkit", json=_transcribe(_encoded())))
            while len(fake.uploads) < 2:
                assert not sending.done(), sending.result().text
                await asyncio.sleep(0.05)
            server_port = int(server.base_url.rsplit(":", 1)[1])
            for pid in listening_workers(server, server_port):
                os.kill(pid, signal.SIGKILL)
            cut = await sending
            # HAProxy answered for the dead worker instead of re-sending the audio (to the respawned
            # one): had it re-sent, this answer would only come after that second upload.
            assert cut.status_code == 502, cut.text
            assert len(fake.uploads) == 2
            await fresh.aclose()
            # The respawned worker serving before the test's stop: a SIGTERM that reaches a worker
            # still starting is lost, and the stop would wait for granian's kill (app.ops.serving).
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"{server.base_url}/health")).status_code == 200:
                        break
                assert time.monotonic() < deadline, server.log()[-2000:]
                await asyncio.sleep(0.1)
    finally:
        haproxy.terminate()
        haproxy.wait(timeout=10)


def _seconds_counted(text: str, model: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "taskpilot_transcription_seconds"
        for sample in family.samples
        if sample.name.endswith("_total") and sample.labels.get("model") == model
    )


def _usage_rows(server: LiveServer, user: str) -> list[dict[str, Any]]:
    exported = run_cli(["usage", "export", "--format", "jsonl", "--include-user"], server.env)
    return [row for row in map(json.loads, exported.stdout.splitlines()) if row["user"] == user]


@pytest.mark.parametrize("reported", ["tokens", "duration", "none"])
async def test_a_dictations_usage_is_recorded_under_the_transcription_model(
    live_server_factory, fake: FakeTranscription, reported: str
) -> None:
    """Two dictations: the metrics grow and the user's `usage` row of the day holds exactly what the
    fake reported (tokens, or seconds of audio; zero, and still a 200, when it reported nothing)."""
    fake.usage = {"tokens": TOKENS, "duration": DURATION, "none": None}[reported]
    server = live_server_factory(_dictation_env(fake.base_url))
    user = unique_user("dictation")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30, headers=_headers(server, user)) as http:
        before = (await http.get("/metrics")).text
        for _ in range(2):
            response = await http.post("/chatkit", json=_transcribe(_encoded()))
            assert response.status_code == 200, response.text
            assert response.json() == {"text": fake.text}
        after = (await http.get("/metrics")).text
        # The health document names the transcription model's last call, as it does the chat model's.
        calls = (await http.get("/api/chatkit/health")).json()["self_hosted"]["model_calls"]
        [last] = [call for call in calls if call["model"] == MODEL]
        assert last["status"] == "ok" and last["latency_ms"] > 0
    assert 'taskpilot_model_calls_total{model="gpt-4o-mini-transcribe",outcome="ok"} 2.0' in after

    usage = fake.usage or {}
    input_tokens, output_tokens = 2 * usage.get("input_tokens", 0), 2 * usage.get("output_tokens", 0)
    seconds = 2 * usage.get("seconds", 0)
    counted, counted_before = tokens_counted(after, MODEL), tokens_counted(before, MODEL)
    grown = {kind: counted[kind] - counted_before[kind] for kind in counted}
    assert grown == {"input": input_tokens, "cached_input": 0, "output": output_tokens, "reasoning": 0}
    assert _seconds_counted(after, MODEL) - _seconds_counted(before, MODEL) == seconds
    assert _usage_rows(server, user) == [
        {
            "day": dt.datetime.now(dt.UTC).date().isoformat(),
            "user": user,
            "model": MODEL,
            "input_tokens": input_tokens,
            "cached_input_tokens": 0,
            "output_tokens": output_tokens,
            "reasoning_tokens": 0,
            "turns": 0,  # a dictation is no turn
            "transcription_seconds": seconds,
        }
    ]
    table = run_cli(["usage", "export", "--format", "csv", "--include-user"], server.env).stdout.splitlines()
    assert table[0].endswith(",turns,transcription_seconds")
    [mine] = [line for line in table if user in line]
    assert mine.endswith(f",0,{float(seconds)}")
    log = server.log()
    assert "transcription usage" in log and KEY not in log


async def test_a_failed_transcription_shows_in_health_and_counts_nothing(
    live_server_factory, fake: FakeTranscription
) -> None:
    server = live_server_factory(_dictation_env(fake.base_url))
    user = unique_user("dictation")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30, headers=_headers(server, user)) as http:
        fake.fail(500)
        assert (await http.post("/chatkit", json=_transcribe(_encoded()))).status_code == 502
        calls = (await http.get("/api/chatkit/health")).json()["self_hosted"]["model_calls"]
        [last] = [call for call in calls if call["model"] == MODEL]
        assert last["status"] == "server_error"
        metrics_text = (await http.get("/metrics")).text
    assert 'taskpilot_model_calls_total{model="gpt-4o-mini-transcribe",outcome="server_error"} 1.0' in metrics_text
    assert _usage_rows(server, user) == []  # no answer, no usage reported: nothing billed to record


async def test_a_spent_token_budget_refuses_dictation_before_the_upload(
    live_server_factory, fake: FakeTranscription
) -> None:
    """Transcription tokens count against QUOTA_TOKENS_PER_USER_PER_DAY like any others: 68 tokens a
    dictation, 100 a day, so the third dictation (136 spent) is refused with the turn's 429, before
    anything reaches OpenAI, and so is a chat turn."""
    fake.usage = TOKENS
    server = live_server_factory(_dictation_env(fake.base_url, QUOTA_TOKENS_PER_USER_PER_DAY="100"))
    user = unique_user("dictation")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30, headers=_headers(server, user)) as http:
        for _ in range(2):
            assert (await http.post("/chatkit", json=_transcribe(_encoded()))).status_code == 200
        refused = await http.post("/chatkit", json=_transcribe(_encoded()))
        assert refused.status_code == 429, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert "100-token daily budget" in refused.json()["detail"]
        assert "QUOTA_TOKENS_PER_USER_PER_DAY" in refused.json()["detail"]
        assert 0 < int(refused.headers["retry-after"]) <= 86_400
        assert len(fake.uploads) == 2
        turn = await ChatKitClient(http, server_token(server.env, user)).create_thread("hello")
        assert turn.status == 429 and "100-token daily budget" in turn.body["detail"]
        # Another user's budget is untouched.
        other = await http.post("/chatkit", json=_transcribe(_encoded()), headers=_headers(server, "bob"))
        assert other.status_code == 200, other.text
    assert len(fake.uploads) == 3
