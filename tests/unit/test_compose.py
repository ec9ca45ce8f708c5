"""compose.yaml, read as compose would (no engine runs here, so `docker compose config` runs in
.ci/image-smoke.sh only where a compose plugin is installed): PostgreSQL, Redis, a one-shot
migration and TaskPilot, started in that order; TaskPilot with several workers and a shared metrics
directory; volumes declared; no secret written in it; and the commands are the ones the image test
(.ci/image-smoke.sh) ran in the image, which in turn are the Dockerfile's entry point and command."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import fields
from typing import Any

import yaml
from testkit.processes import PROJECT_ROOT

from app.settings import Settings

COMPOSE = PROJECT_ROOT / "compose.yaml"
DOCKERFILE = PROJECT_ROOT / "Dockerfile"
SMOKE = PROJECT_ROOT / ".ci" / "image-smoke.sh"


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


def dockerfile_instruction(name: str) -> list[str]:
    """The exec-form JSON of the final stage's last `name` instruction (ENTRYPOINT, CMD)."""
    final_stage = DOCKERFILE.read_text().rsplit("\nFROM ", 1)[1]
    (found,) = re.findall(rf"^{name} (\[.*\])$", final_stage, re.M)[-1:]
    instruction: list[str] = json.loads(found)
    return instruction


def smoke_command(name: str) -> list[str]:
    """A command array of the image test, `NAME=(taskpilot ...)`."""
    (found,) = re.findall(rf"^{name}=\((.*)\)$", SMOKE.read_text(), re.M)
    return shlex.split(found)


def smoke_setting(name: str) -> str:
    (found,) = re.findall(rf"^{name}=(\S+)$", SMOKE.read_text(), re.M)
    return found


def test_the_services_start_in_order_postgres_and_redis_then_migrate_then_taskpilot() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", "redis", "migrate", "taskpilot"}
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["migrate"]["restart"] == "no"
    assert services["taskpilot"]["depends_on"] == {
        "migrate": {"condition": "service_completed_successfully"},
        "redis": {"condition": "service_healthy"},
    }
    for name in ("postgres", "redis"):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name
    for name in ("migrate", "taskpilot"):
        assert services[name]["build"] == "." and services[name]["image"] == services["taskpilot"]["image"]
        assert services[name]["env_file"] == ".env"


def test_compose_runs_the_commands_the_image_test_ran() -> None:
    services = compose()["services"]
    entrypoint = dockerfile_instruction("ENTRYPOINT")
    assert entrypoint == ["taskpilot"]
    assert dockerfile_instruction("CMD") == ["serve"]  # `docker run IMAGE` serves
    assert entrypoint + services["migrate"]["command"] == smoke_command("MIGRATE") == ["taskpilot", "db", "upgrade"]
    assert entrypoint + services["taskpilot"]["command"] == smoke_command("SERVE") == ["taskpilot", "serve"]
    environment = services["taskpilot"]["environment"]
    assert environment["WORKERS"] == smoke_setting("WORKERS") == "2"
    assert environment["PROMETHEUS_MULTIPROC_DIR"] == smoke_setting("METRICS_DIR")
    # Empty at every start: the directory is on a tmpfs.
    assert "/tmp" in services["taskpilot"]["tmpfs"] and environment["PROMETHEUS_MULTIPROC_DIR"].startswith("/tmp/")


def test_the_settings_compose_sets_are_taskpilots_and_its_volumes_are_declared() -> None:
    document = compose()
    settings = {field.name.upper() for field in fields(Settings)}
    for name in ("migrate", "taskpilot"):
        environment = document["services"][name]["environment"]
        assert set(environment) <= settings, set(environment) - settings
        assert environment["DATABASE_URL"].startswith("postgresql+asyncpg://taskpilot:${POSTGRES_PASSWORD:?")
        assert environment["DATABASE_URL"].endswith("@postgres:5432/taskpilot")
        assert environment["REDIS_URL"] == "redis://redis:6379/0"
    used = {
        volume.split(":", 1)[0]
        for service in document["services"].values()
        for volume in service.get("volumes", [])
        if not volume.startswith(("/", "."))
    }
    assert used == set(document["volumes"]) == {"postgres-data", "attachments"}
    assert "/var/lib/taskpilot/var" in " ".join(document["services"]["taskpilot"]["volumes"])


def test_no_secret_is_written_in_compose_or_the_image() -> None:
    password = compose()["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"]
    assert password.startswith("${POSTGRES_PASSWORD:?"), "the password comes from .env, never from this file"
    dockerfile = DOCKERFILE.read_text()
    for name in ("SECRET", "PASSWORD", "API_KEY", "TOKEN"):
        assert not re.search(rf"^(ENV|ARG)\b.*{name}", dockerfile, re.M), f"the Dockerfile sets a {name}"
    assert re.search(r"^USER taskpilot$", dockerfile, re.M), "the image runs as a user of its own, not root"
    assert "HEALTHCHECK" in dockerfile and "curl" not in dockerfile.split("HEALTHCHECK", 1)[1].split("\n\n")[0]
