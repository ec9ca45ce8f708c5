"""Settings: defaults, validation messages, secrets never shown."""

from __future__ import annotations

import pytest

from app.settings import Settings, SettingsError
from tests.support.servers import run_cli


def test_defaults_run_with_nothing_set() -> None:
    settings = Settings.from_env({})
    assert settings.app_env == "development"
    assert settings.auth_mode == "dev"
    assert settings.database_url == "sqlite+aiosqlite:///./var/taskpilot.db"
    assert settings.model_provider == "offline"
    assert settings.port == 8000


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "eighty"}, "PORT='eighty' is invalid: accepts an integer from 0 to 65535"),
        ({"WORKERS": "0"}, "WORKERS='0' is invalid"),
        ({"APP_ENV": "staging"}, "APP_ENV='staging' is invalid: accepts one of development, production"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL='mysql://x' is invalid"),
        ({"DATABASE_URL": "sqlite+aiosqlite:///:memory:"}, "in-memory SQLite"),
        ({"CORS_ORIGINS": "*"}, "CORS_ORIGINS='*' is invalid"),
        ({"CORS_ORIGINS": "example.com"}, "CORS_ORIGINS contains 'example.com'"),
        ({"AUTH_JWKS_URL": "ftp://keys"}, "AUTH_JWKS_URL='ftp://keys' is invalid"),
        ({"AUTH_MODE": "jwt"}, "AUTH_JWKS_URL / AUTH_JWT_SECRET are missing"),
        ({"AUTH_JWT_SECRET": "short"}, "at least 32 characters"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL='loud' is invalid"),
        ({"MODEL_PROVIDER": "openai"}, "OPENAI_API_KEY is missing"),
        ({"MODEL_PROVIDER": "openai-compatible"}, "OPENAI_BASE_URL is missing"),
        ({"LOG_CONTENT": "maybe"}, "LOG_CONTENT='maybe' is invalid: accepts true or false"),
        ({"HTTP_HEADER_READ_TIMEOUT_SECONDS": "61"}, "HTTP_HEADER_READ_TIMEOUT_SECONDS='61' is invalid"),
        ({"HTTP_BODY_READ_TIMEOUT_SECONDS": "0"}, "HTTP_BODY_READ_TIMEOUT_SECONDS='0' is invalid"),
        ({"HTTP_BODY_TOTAL_TIMEOUT_SECONDS": "0.5"}, "HTTP_BODY_TOTAL_TIMEOUT_SECONDS='0.5' is invalid"),
        ({"HTTP_BODY_TOTAL_TIMEOUT_SECONDS": "soon"}, "HTTP_BODY_TOTAL_TIMEOUT_SECONDS='soon' is invalid"),
        ({"CHATKIT_MAX_STREAMS_PER_USER": "-1"}, "CHATKIT_MAX_STREAMS_PER_USER='-1' is invalid"),
        ({"CHATKIT_MAX_STREAMS_PER_USER": "four"}, "CHATKIT_MAX_STREAMS_PER_USER='four' is invalid"),
        ({"TRANSCRIPTION_MAX_BYTES": "26000000"}, "TRANSCRIPTION_MAX_BYTES='26000000' is invalid: accepts an integer"),
        ({"TRANSCRIPTION_MAX_BYTES": "ten"}, "TRANSCRIPTION_MAX_BYTES='ten' is invalid"),
        (
            {"REASONING_EFFORT": "max"},
            "REASONING_EFFORT='max' is invalid: accepts one of off, minimal, low, medium, high",
        ),
        ({"REASONING_SUMMARY": "short"}, "REASONING_SUMMARY='short' is invalid: accepts one of off, auto, concise"),
    ],
)
def test_bad_value_names_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_dictation_needs_the_model_and_the_key_and_widens_only_the_chatkit_body() -> None:
    assert Settings.from_env({"TRANSCRIPTION_MODEL": "whisper-1"}).dictation_missing == ["OPENAI_API_KEY"]
    off = Settings.from_env({"OPENAI_API_KEY": "sk-x", "MODEL_PROVIDER": "offline"})
    assert off.dictation_missing == ["TRANSCRIPTION_MODEL"]
    assert off.chatkit_max_body_bytes == off.max_request_bytes == 1_048_576
    on = Settings.from_env({"OPENAI_API_KEY": "sk-x", "MODEL_PROVIDER": "offline", "TRANSCRIPTION_MODEL": "whisper-1"})
    assert on.dictation_missing == [] and on.transcription_max_bytes == 10 * 1024 * 1024
    # 10 MiB of audio as base64, plus room for the request around it.
    assert on.chatkit_max_body_bytes == 4 * -(-on.transcription_max_bytes // 3) + 4096


def test_production_without_jwt_settings_refuses() -> None:
    with pytest.raises(SettingsError, match="AUTH_MODE=jwt \\(the default when APP_ENV=production\\)"):
        Settings.from_env({"APP_ENV": "production"})
    with pytest.raises(SettingsError, match="AUTH_MODE=dev is invalid when APP_ENV=production"):
        Settings.from_env({"APP_ENV": "production", "AUTH_MODE": "dev", "AUTH_JWT_SECRET": "x" * 40})
    ok = Settings.from_env(
        {
            "APP_ENV": "production",
            "AUTH_JWKS_URL": "https://auth.example.com/api/auth/jwks",
            "DATABASE_URL": "postgresql+asyncpg://taskpilot@db.example.com:5432/taskpilot",
        }
    )
    assert ok.auth_mode == "jwt"


def test_secrets_never_in_repr() -> None:
    settings = Settings.from_env(
        {
            "OPENAI_API_KEY": "sk-live-supersecret",
            "CHATKIT_WORKFLOW_ID": "wf_secretworkflow",
            "AUTH_JWT_SECRET": "s" * 40,
            "MODEL_API_KEY": "mk-secret",
        }
    )
    text = repr(settings) + str(settings)
    for secret in ("sk-live-supersecret", "wf_secretworkflow", "s" * 40, "mk-secret"):
        assert secret not in text
    assert settings.openai_api_key is not None
    assert settings.openai_api_key.get() == "sk-live-supersecret"


def test_dotenv_is_read_and_environment_wins(tmp_path, monkeypatch) -> None:
    (tmp_path / ".env").write_text("PORT=9001\nLOG_LEVEL=debug\n")
    monkeypatch.setenv("LOG_LEVEL", "warning")
    settings = Settings.from_env(dotenv=tmp_path / ".env")
    assert settings.port == 9001
    assert settings.log_level == "WARNING"


def test_cli_start_with_bad_setting_prints_one_line_and_exits(tmp_path) -> None:
    result = run_cli(["serve"], {"PORT": "-3", "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/x.db"}, check=False)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["taskpilot: configuration error: PORT='-3' is invalid: accepts an integer from 0 to 65535"]


def test_cli_production_without_jwt_refuses_to_start(tmp_path) -> None:
    result = run_cli(
        ["serve"], {"APP_ENV": "production", "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/x.db"}, check=False
    )
    assert result.returncode == 2
    assert "AUTH_JWKS_URL / AUTH_JWT_SECRET are missing" in result.stderr


def test_the_header_timeout_reaches_granians_command_line() -> None:
    from app.ops.serving import granian_argv

    settings = Settings.from_env({"HTTP_HEADER_READ_TIMEOUT_SECONDS": "7"})
    argv = granian_argv(
        host="127.0.0.1", port=8000, workers=1, header_read_timeout_seconds=settings.http_header_read_timeout_seconds
    )
    assert argv[argv.index("--http1-header-read-timeout") + 1] == "7000"
    assert argv[argv.index("--http") + 1] == "1"
    # Without it granian exits when one worker dies (tests/load/test_worker_death.py has the live run).
    assert "--respawn-failed-workers" in argv
    # A worker that does not stop (a SIGTERM lost while it started) is killed after the grace and a
    # margin, so the instance's stop ends (tests/live/test_live_server.py has the run).
    assert argv[argv.index("--workers-kill-timeout") + 1] == "30"
    graced = granian_argv(host="127.0.0.1", port=8000, workers=1, shutdown_grace_seconds=2.5)
    assert graced[graced.index("--workers-kill-timeout") + 1] == "13"
    assert Settings.from_env({}).http_header_read_timeout_seconds == 30
    assert Settings.from_env({}).http_body_read_timeout_seconds == 30.0
