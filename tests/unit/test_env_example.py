""".env.example names every setting `Settings` reads and nothing else (both ways, so neither can
drift), each once; its uncommented lines are a production configuration that loads; and every
secret in it is a placeholder."""

from __future__ import annotations

import re
from dataclasses import fields

from dotenv import dotenv_values
from testkit.processes import PROJECT_ROOT

from app.settings import Settings

ENV_EXAMPLE = PROJECT_ROOT / ".env.example"
# Read by compose.yaml, not by TaskPilot.
COMPOSE_ONLY = {"POSTGRES_PASSWORD"}
# `NAME=value` or `# NAME=value`: a setting, set or shown with its default. Prose has spaces.
SETTING = re.compile(r"^(?P<commented># )?(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>\S*)$")


def settings_in_file() -> list[tuple[str, bool]]:
    return [
        (match["name"], not match["commented"])
        for line in ENV_EXAMPLE.read_text().splitlines()
        if (match := SETTING.match(line))
    ]


def test_every_setting_is_in_the_example_and_every_name_there_is_a_setting() -> None:
    names = [name for name, _ in settings_in_file()]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    assert not duplicates, f"listed more than once in .env.example: {duplicates}"
    settings = {field.name.upper() for field in fields(Settings)}
    missing = sorted(settings - set(names))
    assert not missing, f"settings missing from .env.example (add them, commented, in their group): {missing}"
    unknown = sorted(set(names) - settings - COMPOSE_ONLY)
    assert not unknown, f"names in .env.example that Settings does not read: {unknown}"


def test_the_uncommented_lines_are_a_production_configuration_that_loads() -> None:
    values = {name: value for name, value in dotenv_values(ENV_EXAMPLE).items() if value is not None}
    assert set(COMPOSE_ONLY) <= set(values)
    settings = Settings.from_env({k: v for k, v in values.items() if k not in COMPOSE_ONLY})
    assert settings.is_production and not settings.is_sqlite
    assert settings.auth_mode == "jwt" and settings.redis_url is not None
    assert settings.workers > 1 and settings.prometheus_multiproc_dir
    # compose.yaml's PostgreSQL password is the one in DATABASE_URL.
    assert f":{values['POSTGRES_PASSWORD']}@" in settings.database_url


def test_every_secret_in_the_example_is_a_placeholder() -> None:
    # The fields of type Secret (annotations are strings here: `from __future__ import annotations`).
    secrets = {field.name.upper() for field in fields(Settings) if "Secret" in str(field.type)} | COMPOSE_ONLY
    assert {"AUTH_JWT_SECRET", "OPENAI_API_KEY", "REDIS_URL"} <= secrets
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = SETTING.match(line)
        if match and match["name"] in secrets and match["value"] and match["name"] != "REDIS_URL":
            assert "change-me" in match["value"], f"{match['name']} in .env.example must be a placeholder"
