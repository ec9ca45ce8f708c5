"""The granian worker's factory (app.worker): the app of `app.asgi.create_app()`, built without cyclic
garbage collections, and the collector as it was afterwards, also when the build fails."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

import app.asgi
from app import worker
from app.ops.serving import APP_FACTORY, granian_argv

pytestmark = pytest.mark.unit


@pytest.fixture
def collector_enabled() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.enable()
    yield
    if not was_enabled:
        gc.disable()


def test_granian_serves_the_worker_factory() -> None:
    assert APP_FACTORY == "app.worker:create_app"
    assert granian_argv(host="127.0.0.1", port=8000, workers=1)[-1] == APP_FACTORY


def test_the_app_is_built_with_the_collector_paused(monkeypatch: pytest.MonkeyPatch, collector_enabled: None) -> None:
    built = object()
    seen: list[bool] = []

    def build() -> object:
        seen.append(gc.isenabled())
        return built

    monkeypatch.setattr(app.asgi, "create_app", build)
    assert worker.create_app() is built
    assert seen == [False]
    assert gc.isenabled()


def test_a_failed_build_leaves_the_collector_on(monkeypatch: pytest.MonkeyPatch, collector_enabled: None) -> None:
    def build() -> object:
        raise RuntimeError("bad settings")

    monkeypatch.setattr(app.asgi, "create_app", build)
    with pytest.raises(RuntimeError, match="bad settings"):
        worker.create_app()
    assert gc.isenabled()
