"""CPU per text delta of a provider-path turn, in-process, without HTTP in front of the server.

    python -m bench.deltas [--rounds N] [--turns N] [--delay-ms MS] [--profile DIR]
    python -m bench.deltas --merge     # the event merge alone: openai-chatkit's against ours
    python -m bench.deltas --net       # A/B/C: the lean transport on httpx's default transport, on httpx's
                                       # client over our sockets, and on our sockets without httpx's client
    python -m bench.deltas --sdk-cuts  # A/B: the libraries' own functions against our cheaper equivalents
                                       # (`_cut_arms`), swapped in before each arm's turns
    python -m bench.deltas --sdk-cuts-alone  # the same functions alone, CPU per call, alternating rounds

One turn is `threads.create` through the app's own ChatKit server (`handle`, then the controller's
`with_keepalive`), PostgreSQL behind it, the lean model transport reading `bench/fake_upstream.py`
(a process of its own, so its CPU is not counted). Two fakes answer the same turn with SHORT and
LONG text deltas; rounds alternate between them. CPU per delta is the slope
(CPU per LONG turn - CPU per SHORT turn) / (LONG - SHORT): everything a turn pays once (auth aside:
the title call, the store's writes, the run's setup) cancels out. Medians over the rounds.
`--delay-ms` (default 2) spaces the deltas as a model does: each then travels the whole path on
its own, as in a real stream (with 0 they arrive together and share their wake-ups).
`--profile DIR` then profiles SHORT and LONG turns (cProfile on CPU time; `short.prof`, `long.prof`
in DIR) and prints where one delta's CPU goes, stage by stage along the path (the LONG turns'
inclusive time of each stage less the SHORT turns', per extra delta; each stage's share of that
profiled figure applied to the unprofiled CPU per delta: cProfile inflates call-heavy code).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import database, loadgen, report, servers

KEY = "sk-bench-deltas"
SHORT, LONG = 20, 220
MESSAGE = "what should I do first today?"


async def _turns(server: Any, context_for: Any, count: int, expect_frames: int | None) -> tuple[float, int]:
    """CPU seconds of this process for `count` turns one after another; frames of the last turn."""
    from chatkit.server import StreamingResult

    from app.http.sse import with_keepalive

    body = loadgen.threads_create(MESSAGE)
    frames = 0
    started = time.process_time()
    for _ in range(count):
        request = server.parse(body)
        result = await server.handle(request, context_for())
        assert isinstance(result, StreamingResult)
        frames = 0
        async for chunk in with_keepalive(result.json_events, 15.0):
            frames += chunk.count(b"\n\n")
    cpu = time.process_time() - started
    if expect_frames is not None and frames != expect_frames:
        raise RuntimeError(f"expected {expect_frames} frames, got {frames}")
    return cpu, frames


async def run(
    rounds: int,
    turns: int,
    delay_ms: int,
    profile: str | None,
    arms: dict[str, Callable[[], None]] | None = None,
    net_ab: bool = False,
    cuts_ab: bool = False,
) -> dict[str, Any]:
    """`arms`: named set-ups measured in turn within each round (an A/B in one process, so both
    see the same machine); by default one arm that changes nothing. `net_ab`: the arms are the lean
    transport's HTTP transports (`_net_arms`). `cuts_ab`: the libraries' functions against ours (`_cut_arms`)."""
    arms = arms or {"": lambda: None}
    from app.asgi import build_chatkit_server
    from app.core.context import RequestContext
    from app.services.attachments.service import AttachmentService
    from app.settings import Settings
    from app.store.db import build_db_config

    info = report.machine()
    print(f"bench.deltas: {report.describe_machine(info)}; deltas {delay_ms} ms apart", flush=True)
    name = f"taskpilot_bench_deltas_{os.getpid()}"  # helpers running side by side each get their own
    url = await database.create_database(name)
    try:
        database.migrate(url)
        with servers.scratch_dir("taskpilot-bench-deltas-") as scratch:
            fakes = {
                n: servers.start_server(
                    f"fake-openai-{n}",
                    "bench.fake_upstream:create_app",
                    {"FAKE_OPENAI_KEY": KEY, "FAKE_RESPONSES_DELTAS": str(n), "FAKE_RESPONSES_DELAY_MS": str(delay_ms)},
                    log_dir=Path(scratch),
                )
                for n in (SHORT, LONG)
            }
            try:
                chatkit_servers = {}
                engines = []
                for n, fake in fakes.items():
                    settings = Settings.from_env(
                        {
                            "DATABASE_URL": url,
                            "MODEL_PROVIDER": "openai",
                            "OPENAI_API_KEY": KEY,
                            "OPENAI_BASE_URL": f"http://127.0.0.1:{fake.port}/v1",
                            "MODEL_TRANSPORT": "lean",
                            **servers.UNTRIPPED_LIMITS,
                        }
                    )
                    db_config = build_db_config(settings)
                    session_maker = db_config.create_session_maker()
                    engines.append(db_config.get_engine())
                    chatkit_servers[n] = build_chatkit_server(
                        settings, session_maker, AttachmentService.from_settings(settings, session_maker)
                    )
                users = iter(range(10**9))

                def context_for() -> RequestContext:
                    # A user per turn: no thread quota fills up over a run.
                    return RequestContext(user_id=f"deltas{next(users):07d}", time_zone="UTC")

                if net_ab:
                    arms = _net_arms([server.assistant.provider.transport for server in chatkit_servers.values()])
                if cuts_ab:
                    arms = _cut_arms()
                frames: dict[int, int] = {}
                for arm in arms:
                    arms[arm]()
                    for n, server in chatkit_servers.items():  # warm: connections, imports, caches
                        _, frames[n] = await _turns(server, context_for, 3, None)
                if frames[LONG] - frames[SHORT] != LONG - SHORT:
                    raise RuntimeError(f"frames per turn: {frames}")
                cpu: dict[str, dict[int, list[float]]] = {arm: {SHORT: [], LONG: []} for arm in arms}
                for r in range(rounds):
                    order = (SHORT, LONG) if r % 2 == 0 else (LONG, SHORT)
                    names = list(arms) if r % 2 == 0 else list(reversed(arms))
                    for arm in names:
                        arms[arm]()
                        for n in order:
                            seconds, _ = await _turns(chatkit_servers[n], context_for, turns, frames[n])
                            cpu[arm][n].append(seconds / turns)
                if profile:
                    Path(profile).mkdir(parents=True, exist_ok=True)
                    for n, label in ((SHORT, "short"), (LONG, "long")):
                        profiler = cProfile.Profile(time.process_time)
                        profiler.enable()
                        await _turns(chatkit_servers[n], context_for, turns, frames[n])
                        profiler.disable()
                        profiler.dump_stats(Path(profile) / f"{label}.prof")
                for engine in engines:
                    await engine.dispose()
                for server in chatkit_servers.values():
                    await server.assistant.provider.aclose()
                for extra in _net_clients:
                    await extra.aclose()
            finally:
                for fake in fakes.values():
                    fake.stop()
    finally:
        await database.drop_database(name)
    result: dict[str, Any] = {"rounds": rounds, "delay_ms": delay_ms, "turns_per_round": turns, "frames": frames}
    for arm, samples in cpu.items():
        rounds_per_delta = [
            (long - short) / (LONG - SHORT) for short, long in zip(samples[SHORT], samples[LONG], strict=True)
        ]
        per_delta = sorted(rounds_per_delta)
        figures = {
            "cpu_ms_per_turn": {str(n): round(statistics.median(v) * 1000, 2) for n, v in samples.items()},
            "cpu_ms_per_delta": round(statistics.median(per_delta) * 1000, 4),
            "cpu_ms_per_delta_range": [round(per_delta[0] * 1000, 4), round(per_delta[-1] * 1000, 4)],
            # In round order: arms measured in the same round saw the same machine (pair them).
            "cpu_ms_per_delta_rounds": [round(v * 1000, 4) for v in rounds_per_delta],
            "cpu_ms_per_turn_rounds": {str(n): [round(v * 1000, 3) for v in samples[n]] for n in samples},
        }
        result[arm or "figures"] = figures
        print(
            f"{arm + ': ' if arm else ''}CPU per turn: {figures['cpu_ms_per_turn'][str(SHORT)]} ms ({SHORT} deltas), "
            f"{figures['cpu_ms_per_turn'][str(LONG)]} ms ({LONG} deltas); per delta {figures['cpu_ms_per_delta']} ms "
            f"(rounds {figures['cpu_ms_per_delta_range'][0]}..{figures['cpu_ms_per_delta_range'][1]})",
            flush=True,
        )
    if len(cpu) == 2:
        # Two arms: the paired difference, round by round (each round's arms saw the same machine).
        first, second = cpu
        for n in (SHORT, LONG):
            differences = sorted((b - a) * 1000 for a, b in zip(cpu[first][n], cpu[second][n], strict=True))
            result[f"{second}_less_{first}_ms_per_turn_{n}"] = round(statistics.median(differences), 3)
            print(
                f"{second} - {first}, CPU per {n}-delta turn, paired by round: median "
                f"{statistics.median(differences):+.3f} ms (rounds {differences[0]:+.3f}..{differences[-1]:+.3f}; "
                f"{sum(d < 0 for d in differences)} of {len(differences)} below 0)",
                flush=True,
            )
    if profile:
        figures = result.get(list(arms)[-1] or "figures")
        stages = delta_stages(Path(profile), turns, figures["cpu_ms_per_delta"])
        result["stages_ms_per_delta"] = stages
        print("where one delta's CPU goes (ms, cProfile shares applied to the unprofiled figure):")
        for stage, ms in stages.items():
            print(f"  {ms:7.4f}  {stage}")
    return result


_net_clients: list[Any] = []


def _net_arms(transports: list[Any]) -> dict[str, Callable[[], None]]:
    """The lean transport's ways to send, each kept warm and swapped in before each arm's turns:
    "httpx": httpx's client on its default transport (httpcore's AnyIO backend); "client": httpx's
    client on our sockets (`app.agents.net`); "direct": our sockets without httpx's client (the default)."""
    import httpx

    from app.agents.transport import LIMITS

    clients = {
        "httpx": [httpx.AsyncClient(timeout=t.timeout, limits=LIMITS) for t in transports],
        "client": [t.client for t in transports],
    }
    direct = [t._direct for t in transports]
    assert all(d is not None for d in direct)
    _net_clients.extend(clients["httpx"] + clients["client"])
    arms = {
        "httpx": (clients["httpx"], [None] * len(transports)),
        "client": (clients["client"], [None] * len(transports)),
    }
    arms["direct"] = (clients["client"], direct)

    def use(arm: str) -> Callable[[], None]:
        def swap() -> None:
            for transport, client, pool in zip(transports, *arms[arm], strict=True):
                transport._client = client  # the client the next request is sent with
                transport._direct = pool  # None: through the client

        return swap

    return {arm: use(arm) for arm in arms}


def _cut_arms() -> dict[str, Callable[[], None]]:
    """The arms. "library": the openai package's and the Agents SDK's own functions where TaskPilot replaces
    them with cheaper equivalents pinned by unit tests: the non-streamed Response built by
    `construct_type` (`app.agents.response_json`), the default model settings deep-copied whole
    (`app.agents.model_defaults`); "ours": the replacements, as the app installs them."""
    import agents.run_internal.turn_preparation as turn_preparation
    from openai._models import construct_type
    from openai.types.responses import Response

    from app.agents import model_defaults, response_json

    ours = (response_json.response, model_defaults.default_model_settings)

    def library_response(value: object) -> Any:
        return construct_type(type_=Response, value=value)

    def use(response: Callable[[object], Any], settings: Callable[..., Any]) -> Callable[[], None]:
        def swap() -> None:
            response_json.response = response  # type: ignore[assignment]  (the transport looks it up per call)
            turn_preparation.get_default_model_settings = settings  # (the run loop looks it up per call)

        return swap

    return {"library": use(library_response, model_defaults._library), "ours": use(*ours)}


# The stages of a text delta's path, each the inclusive time of its entry functions (`file:function`,
# summed) less that of the next stage's, which it calls. The path runs in three tasks: the SDK's run
# loop (the model's bytes to the SDK's queue), the merge's reads of that queue, and the stream's
# producer (ChatKit's conversion to the frame), then the keepalive side hands each frame on.
_CHAINS: list[list[tuple[str, tuple[str, ...]]]] = [
    [
        ("SDK run loop (per event, its queue's put)", ("run_loop.py:run_single_turn_streamed",)),
        ("lean transport: SSE parse, JSON, event objects", ("transport.py:_events",)),
        ("HTTP client read (httpx, httpcore, h11, anyio)", ("_models.py:aiter_bytes",)),
    ],
    [
        (
            "merge: chatkit's _merge_generators / ours",
            ("agents.py:_merge_generators", "merge.py:merged", "merge.py:fetch"),
        ),
        ("SDK stream_events (its queue's get)", ("result.py:stream_events",)),
    ],
    [
        ("keepalive producer (queue put)", ("sse.py:produce",)),
        ("gate.holding (turn lease)", ("gate.py:holding",)),
        ("_frames: event to SSE bytes (pydantic dump)", ("server.py:_frames",)),
        ("StreamGuard (pending text, UTC stamps)", ("stream.py:events",)),
        ("chatkit server: _process_events (pending items, store)", ("server.py:_process_streaming_impl",)),
        ("TaskPilot turn: respond (ids, notices, annotations)", ("server.py:respond",)),
        ("chatkit stream_agent_response: SDK event to ChatKit event", ("agents.py:stream_agent_response",)),
        ("merge (consumer side, counted above)", ("agents.py:_merge_generators", "merge.py:merged")),
    ],
    [("keepalive consumer (queue get, timeout)", ("sse.py:with_keepalive",))],
]


def _inclusive(stats: Any, entries: tuple[str, ...]) -> float:
    total = 0.0
    for (filename, _, function), (_, _, _, cumulative, _) in stats.stats.items():
        if f"{Path(filename).name}:{function}" in entries:
            total += cumulative
    return total


def delta_stages(directory: Path, turns: int, cpu_ms_per_delta: float) -> dict[str, float]:
    """Per-stage CPU of one extra text delta, from the SHORT and LONG profiles in `directory`."""
    import pstats

    profiles = {n: pstats.Stats(str(directory / f"{label}.prof")) for n, label in ((SHORT, "short"), (LONG, "long"))}

    def per_delta(entries: tuple[str, ...]) -> float:
        return (_inclusive(profiles[LONG], entries) - _inclusive(profiles[SHORT], entries)) / turns / (LONG - SHORT)

    stages: dict[str, float] = {}
    for chain in _CHAINS:
        for (stage, entries), following in zip(chain, [*chain[1:], None], strict=True):
            if stage.endswith("counted above)"):
                continue
            stages[stage] = per_delta(entries) - (per_delta(following[1]) if following else 0.0)
    totals = {n: sum(row[2] for row in p.stats.values()) for n, p in profiles.items()}  # tottime
    profiled = (totals[LONG] - totals[SHORT]) / turns / (LONG - SHORT)
    stages["asyncio loop and the rest (select, handles, callbacks)"] = profiled - sum(stages.values())
    scale = cpu_ms_per_delta / 1000 / profiled if profiled > 0 else 0.0
    return {stage: round(seconds * scale * 1000, 4) for stage, seconds in stages.items()}


async def merge_cost(rounds: int = 15, events: int = 5000) -> dict[str, float]:
    """CPU per event of the turn's event merge alone, openai-chatkit's `_merge_generators` (as it
    ships) against `app.agents.chatkit.merge.merged`, alternating: one event at a time through a
    queue-backed source (as the SDK's stream and ChatKit's tool queue are), the other idle. The
    figures include this harness's own hand-off (an `asyncio.Event` per event: the "none" arm, the
    source read directly)."""
    import importlib.util

    from app.agents.chatkit import merge

    spec = importlib.util.find_spec("chatkit.agents")
    assert spec is not None
    assert spec.loader is not None
    shipped = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shipped)
    # "none": the source read directly, no merge (what the harness itself costs).
    merges = {"chatkit": shipped._merge_generators, "ours": merge.merged, "none": lambda source, idle: source}

    class QueueSource:
        def __init__(self) -> None:
            self.queue: asyncio.Queue[int | None] = asyncio.Queue()

        def __aiter__(self) -> QueueSource:
            return self

        async def __anext__(self) -> int:
            item = await self.queue.get()
            if item is None:
                raise StopAsyncIteration
            return item

    async def once(merged: Callable[..., Any]) -> float:
        source, idle = QueueSource(), QueueSource()
        got = asyncio.Event()

        async def consume() -> None:
            async for _ in merged(source, idle):
                got.set()

        consumer = asyncio.create_task(consume())
        await asyncio.sleep(0)
        started = time.process_time()
        for n in range(events):
            source.queue.put_nowait(n)
            await got.wait()
            got.clear()
        cpu = time.process_time() - started
        source.queue.put_nowait(None)
        await consumer
        return cpu / events

    samples: dict[str, list[float]] = {name: [] for name in merges}
    for r in range(rounds):
        for name in list(merges) if r % 2 == 0 else list(reversed(merges)):
            samples[name].append(await once(merges[name]))
    result = {f"{name}_us_per_event": round(statistics.median(v) * 1e6, 2) for name, v in samples.items()}
    paired = [ours / chatkit for ours, chatkit in zip(samples["ours"], samples["chatkit"], strict=True)]
    result["ours_over_chatkit"] = round(statistics.median(paired), 3)
    print(
        f"event merge, CPU per event: chatkit {result['chatkit_us_per_event']} us, "
        f"ours {result['ours_us_per_event']} us (paired median ratio {result['ours_over_chatkit']}); "
        f"the harness alone {result['none_us_per_event']} us",
        flush=True,
    )
    return result


def cut_cost(rounds: int = 15, calls: int = 400) -> dict[str, float]:
    """CPU per call of each function `_cut_arms` swaps, the library's against ours, alternating
    rounds: the title's non-streamed Response (bench/fake_upstream.py's answer) and the default
    settings of MODEL's default name (gpt-5-mini) and of a GPT-5 name with reasoning (gpt-5)."""
    from openai._models import construct_type
    from openai.types.responses import Response

    import app.agents.assistant  # noqa: F401  (installs the cuts)
    from app.agents import model_defaults, response_json
    from bench.fake_upstream import TITLE, _message, _response

    document = _response([_message("msg_bench", TITLE, "completed")], "completed")
    pairs: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {
        "title Response": (
            lambda: construct_type(type_=Response, value=document),
            lambda: response_json.response(document),
        ),
        "default settings gpt-5-mini": (
            lambda: model_defaults._library("gpt-5-mini"),
            lambda: model_defaults.default_model_settings("gpt-5-mini"),
        ),
        "default settings gpt-5": (
            lambda: model_defaults._library("gpt-5"),
            lambda: model_defaults.default_model_settings("gpt-5"),
        ),
    }

    def once(function: Callable[[], object]) -> float:
        started = time.process_time()
        for _ in range(calls):
            function()
        return (time.process_time() - started) / calls

    result: dict[str, float] = {}
    for name, (library, ours) in pairs.items():
        library(), ours()  # warm: schemas, templates
        samples: dict[str, list[float]] = {"library": [], "ours": []}
        for r in range(rounds):
            arms = [("library", library), ("ours", ours)]
            for arm, function in arms if r % 2 == 0 else reversed(arms):
                samples[arm].append(once(function))
        for arm, values in samples.items():
            result[f"{name}: {arm} us"] = round(statistics.median(values) * 1e6, 2)
        print(
            f"{name}, CPU per call: library {result[f'{name}: library us']} us, ours {result[f'{name}: ours us']} us",
            flush=True,
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--delay-ms", type=int, default=2)
    parser.add_argument("--profile", default=None)
    parser.add_argument("--merge", action="store_true", help="measure the event merge alone")
    parser.add_argument(
        "--net",
        action="store_true",
        help="A/B/C the lean transport: httpx on its sockets, httpx on ours, ours without httpx",
    )
    parser.add_argument(
        "--sdk-cuts",
        action="store_true",
        help="A/B the libraries' own functions against TaskPilot's cheaper equivalents (_cut_arms)",
    )
    parser.add_argument(
        "--sdk-cuts-alone", action="store_true", help="CPU per call of each of those functions, library against ours"
    )
    args = parser.parse_args()
    if args.sdk_cuts_alone:
        cut_cost()
        return
    if args.merge:
        asyncio.run(merge_cost())
        return
    asyncio.run(run(args.rounds, args.turns, args.delay_ms, args.profile, net_ab=args.net, cuts_ab=args.sdk_cuts))


if __name__ == "__main__":
    main()
