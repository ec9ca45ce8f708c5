"""Golden tests of the model transports: each recorded upstream stream (tests/data/model_streams/)
replayed through the stock openai client (`MODEL_TRANSPORT=openai`, the reference) and the lean
transport (`lean`) gives byte-identical ChatKit SSE frames, identical stored items and identical
token usage.

The app runs in-process; the model is the `openai` provider (Responses; the corpus's top-level
cases) or the `openai-compatible` one (Chat Completions; `chat_completions/`) over real HTTP against
the fake model server (tests/support/fake_model_server.py), which sends each recorded answer byte
for byte. Only what the server makes up per run is normalised: ids it generates and timestamps.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from agents.run_internal.tool_execution import _FunctionToolBatchExecutor
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import create_async_engine

from app.agents.providers import ProviderConfig, build_model_provider
from app.asgi import create_app
from app.http.auth import mint_dev_token
from app.store.models import UsageRow
from tests.conftest import create_schema, make_settings
from tests.support.chatkit_client import ChatKitClient, StreamResult
from tests.support.fake_model_server import FakeModelServer, Recorded

CORPUS = Path(__file__).resolve().parents[1] / "data" / "model_streams"
CHAT = "chat_completions"  # the Chat Completions cases' folder; every other folder is a Responses case
CASES = sorted(p.name for p in CORPUS.iterdir() if p.is_dir() and p.name != CHAT) + sorted(
    f"{CHAT}/{p.name}" for p in (CORPUS / CHAT).iterdir() if p.is_dir()
)
PROMPTS = {"tool_calls": "add buy milk (high), buy bread (low, whole grain) and buy eggs tomorrow"}
PROMPTS[f"{CHAT}/tool_calls"] = PROMPTS["tool_calls"]

# Ids and instants the server makes up (the recorded streams' own ids, e.g. `msg_text1`, stay).
# (`thr_…`, `msg_…`, `wf_…` and request ids: 32 hex digits; task ids: UUIDs.)
_GENERATED = re.compile(
    r"\b(?:[a-z]{1,5}_)?[0-9a-f]{32}\b|\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"
)
_INSTANT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)?")


def normalised(texts: list[str]) -> list[str]:
    """`texts` with each generated id replaced by its order of first appearance, instants by a mark."""
    seen: dict[str, str] = {}

    def stand_in(match: re.Match[str]) -> str:
        return seen.setdefault(match.group(0), f"<id{len(seen)}>")

    return [_INSTANT.sub("<instant>", _GENERATED.sub(stand_in, text)) for text in texts]


@pytest.fixture(autouse=True)
def tools_one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK runs the tool calls of one response at once, and which ends first (and so which
    task gets which number) is a race unrelated to the transport: here they run one after another,
    in the order of the response (an asyncio lock serves its waiters first come, first served)."""
    locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}  # each app runs in a loop of its own
    run_single_tool = _FunctionToolBatchExecutor._run_single_tool

    async def serialised(self: Any, **kwargs: Any) -> Any:
        async with locks.setdefault(asyncio.get_running_loop(), asyncio.Lock()):
            return await run_single_tool(self, **kwargs)

    monkeypatch.setattr(_FunctionToolBatchExecutor, "_run_single_tool", serialised)


def settled(frames: list[str], failed: bool) -> list[str]:
    """`frames` as far as a turn that ends in an error (`failed`) is sure to deliver them.

    Why: when the SDK's run loop raises (the refusal case: `ModelRefusalError` once the response is
    complete; an error event or a broken stream mid-answer), its `stream_events` drops the events
    still queued, so how far the failing message's updates and its `thread.item.done` reached
    ChatKit (and the store) before the error is a race of the SDK's (it depends on how often the
    model's stream lets the event loop run), whatever the transport. Such a turn is compared
    without its assistant messages' updates and done frames and stored messages (`in_flight`
    compares the updates as far as both got); every other frame stays, in order.
    """
    if not failed:
        return frames
    racy = set(in_flight(frames, failed))
    done = re.compile(r'"type":"thread\.item\.done","item":\{[^{]*"type":"assistant_message"')
    return [frame for frame in frames if frame not in racy and not done.search(frame)]


def in_flight(frames: list[str], failed: bool) -> list[str]:
    """The updates of a failed turn's assistant messages, in order (see `settled`)."""
    if not failed:
        return []
    added = re.compile(r'"type":"thread\.item\.added","item":\{"id":"([^"]+)"[^{]*"type":"assistant_message"')
    messages = {match.group(1) for frame in frames if (match := added.search(frame))}
    updated = re.compile(r'"type":"thread\.item\.updated","item_id":"([^"]+)"')
    return [frame for frame in frames if (match := updated.search(frame)) and match.group(1) in messages]


def stored(result: dict[str, Any], failed: bool) -> list[Any]:
    """The stored items (the thread's, then the item list's), as far as `settled` compares them."""
    thread_items, listed = result["stored"]
    pages = [thread_items["data"], listed["data"]]
    if failed:
        pages = [[item for item in page if item["type"] != "assistant_message"] for page in pages]
    return pages


def recorded(case: str) -> list[Recorded]:
    """`case`'s answers in order: `n.sse` a stream, `n.json` an error answer (`status`, `headers`, `body`)."""
    answers = []
    for n in range(1, len(list((CORPUS / case).iterdir())) + 1):
        stream = CORPUS / case / f"{n}.sse"
        if stream.exists():
            answers.append(Recorded(stream.read_bytes()))
            continue
        error = json.loads((CORPUS / case / f"{n}.json").read_text())
        answers.append(
            Recorded(
                json.dumps(error["body"]).encode(), status=error["status"], headers=tuple(error["headers"].items())
            )
        )
    return answers


async def replay(tmp_path: Path, case: str, transport: str) -> dict[str, Any]:
    """One `threads.create` turn answered by `case`'s streams through `transport`: what the user
    received, what was stored, the tokens recorded, and the requests the model server got."""
    fake = FakeModelServer(list(recorded(case)))
    provider_name = "openai-compatible" if case.startswith(f"{CHAT}/") else "openai"
    try:
        directory = tmp_path / transport
        directory.mkdir(parents=True)
        settings = make_settings(
            directory,
            MODEL_PROVIDER=provider_name,
            OPENAI_API_KEY=fake.api_key,
            OPENAI_BASE_URL=fake.base_url,
            MODEL_TRANSPORT=transport,
        )
        assert settings.model_transport == transport
        await create_schema(settings.database_url)
        # The provider given explicitly: the title is then made from the user's words, not by a
        # second model call racing the answer (the frames' order stays deterministic).
        provider, _ = build_model_provider(
            ProviderConfig(
                provider=provider_name,
                model=settings.model,
                api_key=fake.api_key,
                base_url=fake.base_url,
                transport=transport,
            )
        )
        app = create_app(settings, model_provider=provider)
        async with AsyncTestClient(app) as client:
            alice = ChatKitClient(client, mint_dev_token(settings, "alice"), time_zone="UTC")
            turn: StreamResult = await alice.create_thread(PROMPTS.get(case, "what is due today?"))
            assert turn.status == 200
            stored = await alice.get_thread(turn.thread_id)
            items = await alice.items(turn.thread_id, order="asc", limit=50)
        engine = create_async_engine(settings.database_url)
        try:
            async with engine.connect() as connection:
                usage = [
                    (row.model, row.input_tokens, row.cached_input_tokens, row.output_tokens, row.reasoning_tokens)
                    for row in (await connection.execute(sa.select(UsageRow))).all()
                ]
        finally:
            await engine.dispose()
        return {
            "frames": turn.raw_frames,
            "stored": [stored.body["items"], items.body],
            "usage": usage,
            "requests": fake.requests,
            "paths": fake.paths,
        }
    finally:
        fake.close()


@pytest.mark.parametrize("case", CASES)
async def test_both_transports_give_the_same_frames_items_and_usage(tmp_path: Path, case: str) -> None:
    stock = await replay(tmp_path, case, "openai")
    lean = await replay(tmp_path, case, "lean")

    failed = '"type":"error"' in stock["frames"][-1]
    assert settled(normalised(lean["frames"]), failed) == settled(normalised(stock["frames"]), failed)
    # What a failed turn's message got through before the error: the same updates, cut at the same
    # point or one path further along.
    lean_updates, stock_updates = (in_flight(normalised(r["frames"]), failed) for r in (lean, stock))
    shorter, longer = sorted((lean_updates, stock_updates), key=len)
    assert longer[: len(shorter)] == shorter
    assert normalised([repr(stored(lean, failed))]) == normalised([repr(stored(stock, failed))])
    assert lean["usage"] == stock["usage"]
    # The same requests: the body the SDK builds, sent unchanged (the same JSON; key order aside).
    assert normalised([json.dumps(lean["requests"], sort_keys=True)]) == normalised(
        [json.dumps(stock["requests"], sort_keys=True)]
    )
    # Every recorded stream was asked for, and the case shows what it is named for (a golden test
    # of two equally empty turns would prove nothing).
    assert len(lean["requests"]) == len(recorded(case))
    assert lean["paths"] == stock["paths"]
    assert SHOWS[case](lean), case


def _text(result: dict[str, Any]) -> str:
    return "".join(result["frames"])


SHOWS: dict[str, Callable[[dict[str, Any]], bool]] = {
    "text": lambda r: "enjoy" in _text(r) and '"type":"error"' not in _text(r),
    "tool_calls": lambda r: all(
        f"Added #{n} Buy {what}" in _text(r) for n, what in enumerate(("milk", "bread", "eggs"), 1)
    ),
    "reasoning": lambda r: "Checking the list" in _text(r) and r["usage"][0][4] == 320,
    # A refusal ends the turn with the generic error (the SDK raises ModelRefusalError).
    "refusal": lambda r: '"type":"error"' in _text(r),
    "error_mid_stream": lambda r: '"delta":" look"' in _text(r) and '"type":"error"' in _text(r),
    "lenient_server": lambda r: "Sure — done! 👍" in _text(r) and r["usage"] == [("gpt-5-mini", 950, 0, 33, 0)],
    "usage": lambda r: r["usage"] == [("gpt-5-mini", 31234, 30720, 777, 512)],
    f"{CHAT}/text": lambda r: "enjoy" in _text(r) and r["usage"] == [("gpt-5-mini", 1840, 1536, 64, 0)],
    f"{CHAT}/tool_calls": lambda r: all(
        f"Added #{n} Buy {what}" in _text(r) for n, what in enumerate(("milk", "bread", "eggs"), 1)
    ),
    f"{CHAT}/refusal": lambda r: '"type":"error"' in _text(r),
    f"{CHAT}/usage": lambda r: r["usage"] == [("gpt-5-mini", 31234, 30720, 777, 512)],
    # The 500 retried once, the turn told why before the wait.
    f"{CHAT}/error_status": lambda r: "500" in _text(r) and '"type":"notice"' in _text(r) and " again" in _text(r),
    # (Here the SDK drops the queued deltas on both paths: the body comes in one read, see `settled`.)
    f"{CHAT}/error_mid_stream": lambda r: '"type":"assistant_message"' in _text(r) and '"type":"error"' in _text(r),
    f"{CHAT}/lenient_server": lambda r: (
        "Sure — done! 👍" in _text(r) and r["usage"] in ([], [("gpt-5-mini", 0, 0, 0, 0)])
    ),
    f"{CHAT}/reasoning_content": lambda r: "Checking the list" in _text(r) and r["usage"][0][4] == 48,
}
