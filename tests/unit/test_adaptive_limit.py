"""The adaptive admission limit's rules (app.ops.adaptive_limit), on lag samples given by the test:
it grows while the event loop is smooth and the limit is in use, backs off multiplicatively from
what is open when the loop lags, never leaves [floor, ceiling]; the sampler measures how late a
sleep wakes, on an injected clock; and `Admission` follows the limit (refuses beyond it, hands a
grown limit's room to waiting turns, gives up freed slots while above it)."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest

from app.core.errors import ServiceUnavailable
from app.ops import metrics
from app.ops.adaptive_limit import AdaptiveLimit, LimitRules, LoopLagSampler, RunQueueWait
from app.ops.admission import Admission, build_admission
from app.settings import Settings

TARGET = 0.025
SMOOTH = 0.002
LAGGING = 0.080


def _limit(*, ceiling: int = 1000, floor: int = 20, window: int = 4) -> AdaptiveLimit:
    return AdaptiveLimit(LimitRules(ceiling=ceiling, floor=floor, target_lag_seconds=TARGET), window=window)


def _window(
    limit: AdaptiveLimit, lag: float, own_lag: float | None = None, *, open_streams: int, demand: int | None = None
) -> int:
    """One whole window of identical samples; the limit after its decision."""
    for n in range(limit.window):
        ended = limit.observe(
            lag, own_lag, open_streams=open_streams, demand=open_streams if demand is None else demand
        )
        assert ended == (n == limit.window - 1)
    return limit.limit


def test_it_starts_at_the_floor() -> None:
    assert _limit(floor=20).limit == 20
    assert _limit(ceiling=5, floor=5).limit == 5


def test_it_grows_while_the_loop_is_smooth_and_the_limit_is_in_use() -> None:
    limit = _limit()
    seen = [limit.limit]
    for _ in range(5):
        seen.append(_window(limit, SMOOTH, open_streams=limit.limit))
    assert seen == sorted(seen) and len(set(seen)) == len(seen), seen
    # At most a quarter more per window, and additive: each step is a share of the limit, not a doubling.
    assert all(b - a <= 0.25 * a + 1 for a, b in itertools.pairwise(seen)), seen


def test_the_step_shrinks_as_the_lag_nears_the_target() -> None:
    far, near = _limit(), _limit()
    assert _window(far, 0.0, open_streams=20) - 20 > _window(near, 0.9 * TARGET, open_streams=20) - 20 >= 1


def test_an_unused_limit_does_not_grow() -> None:
    limit = _limit()
    assert _window(limit, SMOOTH, open_streams=3) == 20  # 3 of 20 in use: nothing measured says more is smooth
    # Turns refused or waiting count as demand even when few are open.
    assert _window(limit, SMOOTH, open_streams=3, demand=25) > 20


def test_it_backs_off_multiplicatively_from_the_open_streams_when_the_loop_lags() -> None:
    limit = _limit()
    for _ in range(20):
        _window(limit, SMOOTH, open_streams=limit.limit)
    grown = limit.limit
    assert grown > 200
    assert _window(limit, LAGGING, open_streams=grown) == int(grown * 0.9)
    # Fewer open than the limit: backing off from the limit would not stop admitting; from the open streams does.
    assert _window(limit, LAGGING, open_streams=100) == 90
    assert limit.lag_seconds == LAGGING


def test_lag_from_waiting_for_a_cpu_holds_the_limit_instead_of_backing_off() -> None:
    limit = _limit()
    for _ in range(10):
        _window(limit, SMOOTH, open_streams=limit.limit)
    grown = limit.limit
    # Late, but the worker was waiting for the CPU another process had: neither back off nor grow.
    assert _window(limit, LAGGING, SMOOTH, open_streams=grown) == grown
    assert limit.lag_seconds == LAGGING and limit.own_lag_seconds == SMOOTH
    # Late from its own work: back off.
    assert _window(limit, LAGGING, LAGGING, open_streams=grown) < grown
    # An own lag above the whole lag is capped at it.
    limit.observe(SMOOTH, 1.0, open_streams=0, demand=0)
    assert limit._samples[-1] == (SMOOTH, SMOOTH)


def test_never_above_the_ceiling_nor_below_the_floor() -> None:
    limit = _limit(ceiling=60, floor=10)
    for _ in range(50):
        assert _window(limit, 0.0, open_streams=limit.limit) <= 60
    assert limit.limit == 60
    for _ in range(50):
        assert _window(limit, 1.0, open_streams=limit.limit) >= 10
    assert limit.limit == 10
    assert _window(limit, 1.0, open_streams=0) == 10


def test_one_stray_sample_in_a_window_does_not_back_off() -> None:
    limit = _limit(window=10)
    for _ in range(9):
        limit.observe(SMOOTH, open_streams=20, demand=20)
    limit.observe(0.5, open_streams=20, demand=20)  # a garbage collection, one turn's set-up
    assert limit.limit > 20 and limit.lag_seconds == SMOOTH
    for _ in range(8):
        limit.observe(SMOOTH, open_streams=limit.limit, demand=limit.limit)
    grown = limit.limit
    limit.observe(0.5, open_streams=grown, demand=grown)
    limit.observe(0.5, open_streams=grown, demand=grown)  # two in ten: the p90 is over the target
    assert limit.limit < grown


def test_the_rules_reject_bounds_that_cannot_hold() -> None:
    with pytest.raises(ValueError):
        LimitRules(ceiling=10, floor=11, target_lag_seconds=TARGET)
    with pytest.raises(ValueError):
        LimitRules(ceiling=10, floor=0, target_lag_seconds=TARGET)
    with pytest.raises(ValueError):
        LimitRules(ceiling=10, floor=1, target_lag_seconds=0)


# ---- the sampler, on an injected clock ------------------------------------------------------------------


async def test_the_sampler_reports_how_late_each_sleep_woke_and_how_much_of_it_was_its_own() -> None:
    now, waited = [100.0], [7.0]
    # (late by, of which waiting for a CPU)
    samples = [(0.0, 0.0), (0.004, 0.0), (0.030, 0.020), (0.010, 0.050)]
    seen: list[tuple[float, float]] = []

    async def sleep(seconds: float) -> None:
        late, waiting = samples[len(seen)]
        now[0] += seconds + late
        waited[0] += waiting

    def on_lag(lag: float, own_lag: float) -> None:
        seen.append((lag, own_lag))
        if len(seen) == len(samples):
            raise asyncio.CancelledError

    sampler = LoopLagSampler(on_lag, interval=0.05, clock=lambda: now[0], waited_clock=lambda: waited[0], sleep=sleep)
    with pytest.raises(asyncio.CancelledError):
        await sampler.run()
    expected = [(0.0, 0.0), (0.004, 0.004), (0.030, 0.010), (0.010, 0.0)]
    assert [lag for lag, _ in seen] == pytest.approx([lag for lag, _ in expected], abs=1e-9)
    assert [own for _, own in seen] == pytest.approx([own for _, own in expected], abs=1e-9)


def test_the_run_queue_wait_reads_linux_schedstat_or_nothing(tmp_path: Path) -> None:
    stat = tmp_path / "schedstat"
    stat.write_text("123456 2500000000 42\n")
    clock = RunQueueWait(str(stat))
    assert clock() == 2.5
    clock.close()
    assert clock() == 0.0
    assert RunQueueWait(str(tmp_path / "missing"))() == 0.0


async def test_the_sampler_starts_and_stops_in_the_running_loop() -> None:
    lags: list[float] = []
    sampler = LoopLagSampler(lambda lag, own: lags.append(lag), interval=0.001)
    sampler.start()
    sampler.start()  # a second start keeps the one task
    while len(lags) < 3:
        await asyncio.sleep(0.005)
    await sampler.stop()
    seen = len(lags)
    await asyncio.sleep(0.01)
    assert len(lags) == seen and all(lag >= 0 for lag in lags)


# ---- Admission follows the limit -------------------------------------------------------------------------


def _adaptive_admission(*, ceiling: int = 100, floor: int = 2, wait_seconds: float = 0.0) -> Admission:
    rules = LimitRules(ceiling=ceiling, floor=floor, target_lag_seconds=TARGET)
    return Admission(ceiling, wait_seconds=wait_seconds, adaptive=AdaptiveLimit(rules, window=1))


async def test_admission_refuses_beyond_the_adaptive_limit_and_admits_more_once_it_grows() -> None:
    admission = _adaptive_admission()
    slots = [await admission.admit(), await admission.admit()]
    assert admission.limit == 2 and admission.saturated
    with pytest.raises(ServiceUnavailable):
        await admission.admit()  # the refusal counts as demand: the limit is in use
    admission.observe_lag(SMOOTH)
    assert admission.limit == 3 and not admission.saturated
    assert metrics.STREAM_CAPACITY._value.get() == 3
    assert metrics.EVENT_LOOP_LAG._value.get() == SMOOTH
    assert metrics.EVENT_LOOP_OWN_LAG._value.get() == SMOOTH
    slots.append(await admission.admit())
    admission.observe_lag(LAGGING)  # 3 open, lagging: back off to the floor, stop admitting
    assert admission.limit == 2 and admission.saturated
    with pytest.raises(ServiceUnavailable):
        await admission.admit()
    for slot in slots:
        slot.release()
    assert admission.open == 0


async def test_as_many_turns_may_wait_as_the_worker_admits_now() -> None:
    admission = _adaptive_admission(wait_seconds=5)
    held = [await admission.admit(), await admission.admit()]
    waiting = [asyncio.create_task(admission.admit()) for _ in range(2)]
    await asyncio.sleep(0.01)
    assert admission.max_waiting == admission.limit == 2 and admission.waiting == 2
    with pytest.raises(ServiceUnavailable):
        await admission.admit()  # the queue is as long as the limit: full
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)
    for slot in held:
        slot.release()
    assert admission.open == 0 and admission.waiting == 0


async def test_a_grown_limit_admits_the_turns_already_waiting() -> None:
    admission = _adaptive_admission(wait_seconds=5)
    held = [await admission.admit(), await admission.admit()]
    waiting = asyncio.create_task(admission.admit())
    await asyncio.sleep(0.01)
    assert admission.waiting == 1
    admission.observe_lag(SMOOTH)
    slot = await asyncio.wait_for(waiting, 1)
    assert admission.open == 3 and admission.waiting == 0
    for s in [*held, slot]:
        s.release()
    assert admission.open == 0


async def test_a_slot_freed_above_a_lowered_limit_is_not_handed_to_a_waiter() -> None:
    admission = _adaptive_admission(floor=2, wait_seconds=0.2)
    held = [await admission.admit(), await admission.admit()]
    with pytest.raises(ServiceUnavailable):
        await admission.admit()
    admission.observe_lag(SMOOTH)
    held.append(await admission.admit())  # 3 open at a limit of 3
    admission.observe_lag(LAGGING)  # back to 2: one too many open
    assert admission.limit == 2
    waiting = asyncio.create_task(admission.admit())
    await asyncio.sleep(0.01)
    held.pop().release()  # 2 open now, at the limit: the waiter gets nothing
    assert admission.open == 2
    with pytest.raises(ServiceUnavailable):
        await waiting
    held.pop().release()  # 1 open, under the limit: a newcomer is admitted
    third = await admission.admit()
    for slot in [*held, third]:
        slot.release()
    assert admission.open == 0


def test_the_settings_build_an_adaptive_or_a_fixed_admission() -> None:
    adaptive = build_admission(Settings())
    assert adaptive.adaptive is not None and adaptive.ceiling == 1000 and adaptive.limit == 50
    assert adaptive.adaptive.rules.target_lag_seconds == 0.025
    fixed = build_admission(Settings(chatkit_admission_target_lag_ms=0, chatkit_max_streams=50))
    assert fixed.adaptive is None and fixed.limit == 50
    # A ceiling under the floor: the floor follows it, so the limit is the ceiling (the load tests' small limits).
    small = build_admission(Settings(chatkit_max_streams=5))
    assert small.adaptive is not None and small.limit == 5
    for _ in range(small.adaptive.window):
        small.observe_lag(1.0)
    assert small.limit == 5 and small.adaptive.lag_seconds == 1.0
