"""Each setting's default is written once, on its field: the environment reader derives every
fallback from the field, so an unset variable yields exactly `Settings()`."""

from __future__ import annotations

from dataclasses import fields

from app.settings import DEFAULT_MAX_STREAMS_PER_WORKER, POOL_FOR_STREAMS_MAX, Settings, pool_for_streams


def test_an_empty_environment_reads_as_the_fields_defaults() -> None:
    read = Settings.from_env({})
    defaults = Settings()
    differing = {
        f.name: (getattr(read, f.name), getattr(defaults, f.name))
        for f in fields(Settings)
        if getattr(read, f.name) != getattr(defaults, f.name)
    }
    assert not differing, f"the reader's fallback and the field's default disagree (read, field): {differing}"


def test_the_pool_default_is_what_the_default_stream_ceiling_asks_for() -> None:
    assert Settings().chatkit_max_streams == DEFAULT_MAX_STREAMS_PER_WORKER == 1000
    assert Settings().database_pool_size == pool_for_streams(DEFAULT_MAX_STREAMS_PER_WORKER)
    assert Settings().database_max_overflow == pool_for_streams(DEFAULT_MAX_STREAMS_PER_WORKER)
    # The ceiling is far above what a worker carries: the pool stops growing with it.
    assert pool_for_streams(DEFAULT_MAX_STREAMS_PER_WORKER) == POOL_FOR_STREAMS_MAX == 20
    assert pool_for_streams(50) == 10 and pool_for_streams(150) == 15
