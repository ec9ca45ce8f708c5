"""Each setting's default is written once, on its field: the environment reader derives every
fallback from the field, so an unset variable yields exactly `Settings()`."""

from __future__ import annotations

from dataclasses import fields

from app.settings import DEFAULT_MAX_STREAMS_PER_WORKER, Settings, pool_for_streams


def test_an_empty_environment_reads_as_the_fields_defaults() -> None:
    read = Settings.from_env({})
    defaults = Settings()
    differing = {
        f.name: (getattr(read, f.name), getattr(defaults, f.name))
        for f in fields(Settings)
        if getattr(read, f.name) != getattr(defaults, f.name)
    }
    assert not differing, f"the reader's fallback and the field's default disagree (read, field): {differing}"


def test_the_pool_default_is_what_the_default_stream_limit_asks_for() -> None:
    assert Settings().chatkit_max_streams == DEFAULT_MAX_STREAMS_PER_WORKER == 50
    assert Settings().database_pool_size == pool_for_streams(DEFAULT_MAX_STREAMS_PER_WORKER)
    assert "default limit of 50" in (pool_for_streams.__doc__ or "")
