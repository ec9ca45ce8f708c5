"""The one settings object: read from the environment (and an optional `.env`) once, validated once.

A bad value raises `SettingsError` whose message is a single line naming the variable and
what it accepts; `taskpilot` prints that line and exits non-zero instead of starting.

Why one long module: every variable the service reads is here, once, with its default, its
validation and the message that names it — the README's configuration table is this file.
"""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import urlsplit

from app.core.clock import parse_time_zone
from app.core.errors import DomainError

T = TypeVar("T")
N = TypeVar("N", int, float)

AppEnv = Literal["development", "production"]
AuthMode = Literal["dev", "jwt"]
ModelProvider = Literal["offline", "openai", "openai-compatible"]

DEFAULT_DEV_SECRET = "taskpilot-development-secret-change-me-0123456789"

# Attachment types whose content TaskPilot can verify (magic bytes, or UTF-8 text).
SUPPORTED_ATTACHMENT_TYPES = (
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
    "text/markdown",
    "text/csv",
    "application/json",
)
DEFAULT_ATTACHMENT_TYPES = SUPPORTED_ATTACHMENT_TYPES[:-1]


class SettingsError(ValueError):
    """A setting has a value the service cannot start with."""


class Secret:
    """A string that never shows itself in `repr`, `str`, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


def _read_dotenv(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


class _Reader:
    """Typed access to the environment that turns bad values into one-line `SettingsError`s."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def raw(self, name: str) -> str | None:
        value = self.env.get(name)
        if value is None:
            return None
        value = value.strip()
        return value or None

    def text(self, name: str, default: str) -> str:
        value = self.raw(name)
        return default if value is None else value

    def optional(self, name: str) -> str | None:
        return self.raw(name)

    def secret(self, name: str) -> Secret | None:
        value = self.raw(name)
        return None if value is None else Secret(value)

    def choice(self, name: str, choices: tuple[T, ...], default: T) -> T:
        value = self.raw(name)
        if value is None:
            return default
        for choice in choices:
            if value.lower() == str(choice):
                return choice
        raise SettingsError(f"{name}={value!r} is invalid: accepts one of {', '.join(map(str, choices))}")

    def integer(self, name: str, default: int, *, minimum: int, maximum: int) -> int:
        return self._bounded(name, default, int, minimum, maximum, "an integer")

    def number(self, name: str, default: float, *, minimum: float, maximum: float) -> float:
        return self._bounded(name, default, float, minimum, maximum, "a number")

    def _bounded(self, name: str, default: N, parse: Callable[[str], N], minimum: N, maximum: N, what: str) -> N:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number: N | None = parse(value)
        except ValueError:
            number = None
        if number is None or not minimum <= number <= maximum:
            raise SettingsError(f"{name}={value!r} is invalid: accepts {what} from {minimum} to {maximum}")
        return number

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise SettingsError(f"{name}={value!r} is invalid: accepts true or false")

    def items(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.raw(name)
        if value is None:
            return default
        return tuple(part.strip() for part in value.split(",") if part.strip())

    def url(self, name: str, *, schemes: tuple[str, ...]) -> str | None:
        value = self.raw(name)
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in schemes or not parts.netloc:
            raise SettingsError(f"{name}={value!r} is invalid: accepts an absolute {'/'.join(schemes)} URL")
        return value.rstrip("/")


DEFAULT_HTTP_HEADER_READ_TIMEOUT_SECONDS = 30
# Concurrent ChatKit streams one worker admits (CHATKIT_MAX_STREAMS). README's "Capacity" section
# has the measurement behind it (`python -m bench.overload`, the provider path offered 3x the limit).
DEFAULT_MAX_STREAMS_PER_WORKER = 50


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything TaskPilot can be configured with. Build it with `Settings.from_env()`."""

    app_env: AppEnv = "development"
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    log_level: str = "INFO"
    log_content: bool = False

    database_url: str = "sqlite+aiosqlite:///./var/taskpilot.db"
    # Per worker. Unset, both follow from CHATKIT_MAX_STREAMS (see `pool_for_streams`).
    database_pool_size: int = 10
    database_max_overflow: int = 10
    database_pool_timeout_seconds: float = 10.0
    database_echo: bool = False
    # Off behind a pooler that does not carry prepared statements between transactions (PgBouncer
    # before 1.21 in transaction mode): every statement is then sent unnamed (app.store.db).
    database_statement_cache: bool = True
    # APP_ENV=production refuses a SQLite file (one process on one machine) unless this says so.
    allow_sqlite_in_production: bool = False

    cors_origins: tuple[str, ...] = ()
    max_request_bytes: int = 1_048_576
    # Granian closes a connection whose request headers do not arrive in time: one that sends
    # nothing, stops half-way through its headers, or sits idle between keep-alive requests.
    http_header_read_timeout_seconds: int = DEFAULT_HTTP_HEADER_READ_TIMEOUT_SECONDS
    # A request body that stops arriving for this long is answered 408 and its connection closed.
    # Neither timeout touches responses, so SSE streams (keepalive every <= 15 s) are never cut.
    http_body_read_timeout_seconds: float = 30.0
    # A body still incomplete this long after the server started reading it is answered 408 and
    # its connection closed, however steadily it trickles in (the per-chunk timeout alone lets a
    # byte every few seconds hold a connection for ever).
    http_body_total_timeout_seconds: float = 60.0

    auth_mode: AuthMode = "dev"
    auth_dev_secret: Secret = field(default_factory=lambda: Secret(DEFAULT_DEV_SECRET))
    auth_jwks_url: str | None = None
    auth_jwt_secret: Secret | None = None
    auth_issuer: str | None = None
    auth_audience: str | None = None
    auth_leeway_seconds: int = 30
    # Development tokens on an address other machines reach: anyone could mint one, and the
    # built-in secret is public. Refused unless an operator says so.
    auth_dev_allow_network: bool = False
    # Where the page at `/` gets a JWT for the browser's session (Better Auth: <base>/api/auth/token).
    auth_token_url: str | None = None

    openai_api_key: Secret | None = None
    openai_base_url: str | None = None
    openai_timeout_seconds: float = 30.0
    chatkit_workflow_id: Secret | None = None
    chatkit_workflow_version: str | None = None
    chatkit_session_ttl_seconds: int | None = None
    # Sessions one user may mint (or refresh) per minute through TaskPilot; 0 = no limit.
    chatkit_session_rate_limit_per_minute: int = 30
    # Requests per minute OpenAI admits within one session; None = OpenAI's default (10).
    chatkit_session_max_requests_per_minute: int | None = None
    chatkit_file_upload_enabled: bool = True
    chatkit_history_enabled: bool = True
    chatkit_automatic_thread_titling: bool = True
    # The page's ChatKit domain key (OpenAI's domain allowlist); localhost works without one.
    chatkit_domain_key: str | None = None

    model_provider: ModelProvider = "offline"
    model: str = "gpt-5-mini"
    # The models the page's composer offers (`inference_options.model`); empty: only MODEL, no picker.
    model_choices: tuple[str, ...] = ()
    model_api_key: Secret | None = None
    model_context_tokens: int = 16_000
    offline_model_delay_ms: int = 0
    # A model call silent this long gets one `notice` per turn ("taking longer than usual").
    model_slow_notice_seconds: float = 8.0
    # The IANA zone of "today", "tomorrow" and "overdue" for a request without a `Time-Zone` header
    # (a stock ChatKit front end sends none); replies that used it say so.
    default_time_zone: str = "UTC"
    transcription_model: str | None = None
    # Decoded audio one `input.transcribe` may carry; OpenAI's own limit is 25 MB.
    transcription_max_bytes: int = 10 * 1024 * 1024

    stream_keepalive_seconds: float = 15.0
    # Admission control, per worker process: turns beyond the limit wait up to the admission wait
    # for a slot, then get a 503 with Retry-After before any stream opens (see app.ops.admission).
    chatkit_max_streams: int = DEFAULT_MAX_STREAMS_PER_WORKER
    chatkit_admission_wait_seconds: float = 0.5
    # How long a thread's turn lease lasts unless renewed (the running turn renews it every third
    # of this): after a worker dies mid-turn, the thread takes new turns again within this time.
    chatkit_turn_lease_seconds: float = 30.0
    # Of those, what one user may hold at once (per worker); 0 = no share, only the worker's limit.
    chatkit_max_streams_per_user: int = 4
    chat_retention_days: int | None = None
    # Two-phase uploads whose bytes never arrived are deleted by `taskpilot cleanup` after this.
    attachment_pending_ttl_hours: int = 24
    # Where attachment bytes live: a directory, file:///abs/dir, or s3://bucket/prefix.
    attachment_storage_url: str = "./var/attachments"
    attachment_s3_endpoint_url: str | None = None  # S3-compatible services (MinIO, R2, ...)
    attachment_s3_region: str | None = None
    attachment_s3_access_key_id: Secret | None = None
    attachment_s3_secret_access_key: Secret | None = None
    attachment_max_bytes: int = 10 * 1024 * 1024
    attachment_allowed_types: tuple[str, ...] = DEFAULT_ATTACHMENT_TYPES
    # Signs upload and preview URLs (the browser sends no bearer token with them); every
    # instance needs the same value. Unset: derived from AUTH_DEV_SECRET or AUTH_JWT_SECRET.
    attachment_signing_secret: Secret | None = None
    attachment_url_ttl_seconds: int = 900
    # What of an attachment reaches the model: images up to this size (as data URLs), and
    # text files up to this many characters; the rest is described by name, type and size.
    attachment_model_image_bytes: int = 4 * 1024 * 1024
    attachment_model_text_chars: int = 20_000
    public_base_url: str | None = None  # e.g. https://tasks.example.com, when behind a proxy

    redis_url: Secret | None = None
    rate_limit_chat_per_minute: int = 30
    rate_limit_uploads_per_minute: int = 20
    rate_limit_anonymous_per_minute: int = 60
    # Peers (a load balancer) whose X-Forwarded-For names the client; from anyone else it is ignored.
    # Networks in their normal form ("10.0.0.5/32"), kept as text: routes get Settings as a
    # dependency, and Litestar's signature model cannot carry a union of ipaddress types.
    trusted_proxies: tuple[str, ...] = ()
    metrics_token: Secret | None = None
    # Where the workers' metrics meet so /metrics sums them (prometheus-client's multiprocess mode).
    # Unset with WORKERS > 1, `taskpilot serve` makes a private one for the run (app.ops.startup).
    prometheus_multiproc_dir: str | None = None
    shutdown_grace_seconds: float = 20.0

    # Per-user quotas (0 = no quota): what one user may keep, whatever the rate limits let through.
    quota_threads_per_user: int = 1_000
    quota_items_per_thread: int = 2_000
    quota_tasks_per_user: int = 5_000
    quota_attachment_bytes_per_user: int = 1 << 30
    # Longest thread title (threads.update; a generated title is cut to it) and user message.
    max_thread_title_chars: int = 200
    max_message_chars: int = 32_000

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def hosted_sessions_missing(self) -> list[str]:
        """Variables hosted mode still needs; empty when hosted sessions can be minted."""
        missing = []
        if not self.openai_api_key:
            missing.append("OPENAI_API_KEY")
        if not self.chatkit_workflow_id:
            missing.append("CHATKIT_WORKFLOW_ID")
        return missing

    @property
    def dictation_missing(self) -> list[str]:
        """Variables `input.transcribe` still needs; empty when dictation is configured."""
        missing = []
        if not self.transcription_model:
            missing.append("TRANSCRIPTION_MODEL")
        if not self.openai_api_key:
            missing.append("OPENAI_API_KEY")
        return missing

    @property
    def chatkit_max_body_bytes(self) -> int:
        """The largest `POST /chatkit` body: MAX_REQUEST_BYTES, or room for TRANSCRIPTION_MAX_BYTES of audio
        as base64 (4 characters per 3 bytes) plus the envelope when dictation is configured."""
        if self.dictation_missing:
            return self.max_request_bytes
        return max(self.max_request_bytes, 4 * math.ceil(self.transcription_max_bytes / 3) + 4096)

    def check_dev_auth_host(self, host: str) -> None:
        """Refuse development auth on an address other machines can reach, unless allowed."""
        if self.auth_mode == "dev" and not self.auth_dev_allow_network and not is_loopback(host):
            raise SettingsError(
                f"AUTH_DEV_ALLOW_NETWORK is not set: AUTH_MODE=dev on HOST={host!r} lets anyone on the network mint "
                "tokens with a public secret; serve on 127.0.0.1, use AUTH_MODE=jwt, or set AUTH_DEV_ALLOW_NETWORK=true"
            )

    def replace(self, **changes: object) -> Settings:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Settings(**values)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, dotenv: Path | None = None) -> Settings:
        """Read and validate every setting. `environ` wins over the `.env` file."""
        env: dict[str, str] = {}
        if environ is None:
            env.update(_read_dotenv(dotenv if dotenv is not None else Path.cwd() / ".env"))
            env.update(os.environ)
        else:
            env.update(environ)
        r = _Reader(env)
        d = cls()

        app_env: AppEnv = r.choice("APP_ENV", ("development", "production"), d.app_env)
        production = app_env == "production"

        database_url = r.text("DATABASE_URL", d.database_url)
        if database_url.startswith(("postgresql://", "postgres://")):
            database_url = "postgresql+asyncpg://" + database_url.split("://", 1)[1]
        if not database_url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise SettingsError(
                f"DATABASE_URL={_redact_url(database_url)!r} is invalid: accepts "
                "sqlite+aiosqlite:///path/to/file.db or postgresql+asyncpg://user:pass@host:port/db"
            )
        if database_url.startswith("sqlite") and ":memory:" in database_url:
            raise SettingsError(
                "DATABASE_URL is invalid: an in-memory SQLite database exists only inside one process; "
                "accepts a SQLite file path"
            )

        auth_jwks_url = r.url("AUTH_JWKS_URL", schemes=("http", "https"))
        auth_jwt_secret = r.secret("AUTH_JWT_SECRET")
        if auth_jwt_secret is not None and len(auth_jwt_secret.get()) < 32:
            raise SettingsError("AUTH_JWT_SECRET is invalid: accepts a shared HS256 secret of at least 32 characters")
        auth_mode: AuthMode = r.choice("AUTH_MODE", ("dev", "jwt"), "jwt" if production else "dev")
        if auth_mode == "jwt" and auth_jwks_url is None and auth_jwt_secret is None:
            raise SettingsError(
                "AUTH_JWKS_URL / AUTH_JWT_SECRET are missing: AUTH_MODE=jwt"
                + (" (the default when APP_ENV=production)" if production else "")
                + " needs a JWKS URL (Better Auth: <base>/api/auth/jwks) or a shared secret of 32+ characters"
            )
        if production and auth_mode == "dev":
            raise SettingsError("AUTH_MODE=dev is invalid when APP_ENV=production: accepts jwt")
        auth_dev_secret = r.secret("AUTH_DEV_SECRET") or d.auth_dev_secret
        allow_sqlite_in_production = r.boolean("ALLOW_SQLITE_IN_PRODUCTION", d.allow_sqlite_in_production)
        if production and database_url.startswith("sqlite") and not allow_sqlite_in_production:
            raise SettingsError(
                "ALLOW_SQLITE_IN_PRODUCTION is not set: APP_ENV=production with a SQLite DATABASE_URL serves one "
                "process on one machine; use DATABASE_URL=postgresql+asyncpg://user:pass@host:5432/db, "
                "or set ALLOW_SQLITE_IN_PRODUCTION=true"
            )

        openai_api_key = r.secret("OPENAI_API_KEY")
        model_api_key = r.secret("MODEL_API_KEY")
        default_provider: ModelProvider = "openai" if openai_api_key else "offline"
        model_provider: ModelProvider = r.choice(
            "MODEL_PROVIDER", ("offline", "openai", "openai-compatible"), default_provider
        )
        openai_base_url = r.url("OPENAI_BASE_URL", schemes=("http", "https"))
        if model_provider == "openai" and not openai_api_key:
            raise SettingsError("OPENAI_API_KEY is missing: MODEL_PROVIDER=openai needs an OpenAI API key")
        if model_provider == "openai-compatible" and not openai_base_url:
            raise SettingsError(
                "OPENAI_BASE_URL is missing: MODEL_PROVIDER=openai-compatible needs the provider's base URL"
            )

        log_level = r.choice("LOG_LEVEL", ("debug", "info", "warning", "error"), d.log_level.lower()).upper()
        retention = r.integer("CHAT_RETENTION_DAYS", d.chat_retention_days or 0, minimum=0, maximum=36_500)
        ttl = r.integer("CHATKIT_SESSION_TTL_SECONDS", d.chatkit_session_ttl_seconds or 0, minimum=0, maximum=86_400)
        if 0 < ttl < 60:
            raise SettingsError(f"CHATKIT_SESSION_TTL_SECONDS={ttl!r} is invalid: accepts 60 to 86400 (or unset)")

        model, model_choices = _models(r, d.model)
        default_time_zone = _time_zone(r.text("DEFAULT_TIME_ZONE", d.default_time_zone))
        max_streams = r.integer("CHATKIT_MAX_STREAMS", d.chatkit_max_streams, minimum=1, maximum=100_000)

        settings = cls(
            app_env=app_env,
            host=r.text("HOST", d.host),
            port=r.integer("PORT", d.port, minimum=0, maximum=65_535),
            workers=r.integer("WORKERS", d.workers, minimum=1, maximum=256),
            log_level=log_level,
            log_content=r.boolean("LOG_CONTENT", d.log_content),
            database_url=database_url,
            database_pool_size=r.integer("DATABASE_POOL_SIZE", pool_for_streams(max_streams), minimum=1, maximum=500),
            database_max_overflow=r.integer(
                "DATABASE_MAX_OVERFLOW", pool_for_streams(max_streams), minimum=0, maximum=500
            ),
            database_pool_timeout_seconds=r.number(
                "DATABASE_POOL_TIMEOUT_SECONDS", d.database_pool_timeout_seconds, minimum=0.05, maximum=300.0
            ),
            database_echo=r.boolean("DATABASE_ECHO", d.database_echo),
            database_statement_cache=r.boolean("DATABASE_STATEMENT_CACHE", d.database_statement_cache),
            allow_sqlite_in_production=allow_sqlite_in_production,
            cors_origins=_cors(r.items("CORS_ORIGINS", d.cors_origins)),
            max_request_bytes=r.integer("MAX_REQUEST_BYTES", d.max_request_bytes, minimum=1024, maximum=1 << 30),
            # Granian accepts 1 ms to 60 s.
            http_header_read_timeout_seconds=r.integer(
                "HTTP_HEADER_READ_TIMEOUT_SECONDS", d.http_header_read_timeout_seconds, minimum=1, maximum=60
            ),
            http_body_read_timeout_seconds=r.number(
                "HTTP_BODY_READ_TIMEOUT_SECONDS", d.http_body_read_timeout_seconds, minimum=0.1, maximum=3600.0
            ),
            http_body_total_timeout_seconds=r.number(
                "HTTP_BODY_TOTAL_TIMEOUT_SECONDS", d.http_body_total_timeout_seconds, minimum=1.0, maximum=86_400.0
            ),
            auth_mode=auth_mode,
            auth_dev_secret=auth_dev_secret,
            auth_jwks_url=auth_jwks_url,
            auth_jwt_secret=auth_jwt_secret,
            auth_issuer=r.optional("AUTH_ISSUER"),
            auth_audience=r.optional("AUTH_AUDIENCE"),
            auth_leeway_seconds=r.integer("AUTH_LEEWAY_SECONDS", d.auth_leeway_seconds, minimum=0, maximum=300),
            auth_token_url=r.url("AUTH_TOKEN_URL", schemes=("http", "https")),
            openai_api_key=openai_api_key,
            openai_base_url=openai_base_url,
            openai_timeout_seconds=r.number(
                "OPENAI_TIMEOUT_SECONDS", d.openai_timeout_seconds, minimum=1.0, maximum=600.0
            ),
            chatkit_workflow_id=r.secret("CHATKIT_WORKFLOW_ID"),
            chatkit_workflow_version=r.optional("CHATKIT_WORKFLOW_VERSION"),
            chatkit_session_ttl_seconds=ttl or None,
            chatkit_session_rate_limit_per_minute=r.integer(
                "CHATKIT_SESSION_RATE_LIMIT_PER_MINUTE",
                d.chatkit_session_rate_limit_per_minute,
                minimum=0,
                maximum=100_000,
            ),
            chatkit_session_max_requests_per_minute=r.integer(
                "CHATKIT_SESSION_MAX_REQUESTS_PER_MINUTE",
                d.chatkit_session_max_requests_per_minute or 0,
                minimum=0,
                maximum=100_000,
            )
            or None,
            chatkit_file_upload_enabled=r.boolean("CHATKIT_FILE_UPLOAD_ENABLED", d.chatkit_file_upload_enabled),
            chatkit_history_enabled=r.boolean("CHATKIT_HISTORY_ENABLED", d.chatkit_history_enabled),
            chatkit_automatic_thread_titling=r.boolean(
                "CHATKIT_AUTOMATIC_THREAD_TITLING", d.chatkit_automatic_thread_titling
            ),
            chatkit_domain_key=r.optional("CHATKIT_DOMAIN_KEY"),
            model_provider=model_provider,
            model=model,
            model_choices=model_choices,
            model_api_key=model_api_key,
            model_context_tokens=r.integer(
                "MODEL_CONTEXT_TOKENS", d.model_context_tokens, minimum=256, maximum=2_000_000
            ),
            offline_model_delay_ms=r.integer(
                "OFFLINE_MODEL_DELAY_MS", d.offline_model_delay_ms, minimum=0, maximum=60_000
            ),
            model_slow_notice_seconds=r.number(
                "MODEL_SLOW_NOTICE_SECONDS", d.model_slow_notice_seconds, minimum=0.01, maximum=600.0
            ),
            default_time_zone=default_time_zone,
            transcription_model=r.optional("TRANSCRIPTION_MODEL"),
            transcription_max_bytes=r.integer(
                "TRANSCRIPTION_MAX_BYTES", d.transcription_max_bytes, minimum=1024, maximum=25 * 1000 * 1000
            ),
            stream_keepalive_seconds=r.number(
                "STREAM_KEEPALIVE_SECONDS", d.stream_keepalive_seconds, minimum=0.05, maximum=15.0
            ),
            chatkit_max_streams=max_streams,
            chatkit_admission_wait_seconds=r.number(
                "CHATKIT_ADMISSION_WAIT_SECONDS", d.chatkit_admission_wait_seconds, minimum=0.0, maximum=30.0
            ),
            chatkit_turn_lease_seconds=r.number(
                "CHATKIT_TURN_LEASE_SECONDS", d.chatkit_turn_lease_seconds, minimum=3.0, maximum=600.0
            ),
            chatkit_max_streams_per_user=r.integer(
                "CHATKIT_MAX_STREAMS_PER_USER", d.chatkit_max_streams_per_user, minimum=0, maximum=100_000
            ),
            chat_retention_days=retention or None,
            attachment_pending_ttl_hours=r.integer(
                "ATTACHMENT_PENDING_TTL_HOURS", d.attachment_pending_ttl_hours, minimum=1, maximum=8_760
            ),
            attachment_storage_url=_storage_url(r.text("ATTACHMENT_STORAGE_URL", d.attachment_storage_url)),
            attachment_s3_endpoint_url=r.url("ATTACHMENT_S3_ENDPOINT_URL", schemes=("http", "https")),
            attachment_s3_region=r.optional("ATTACHMENT_S3_REGION"),
            attachment_s3_access_key_id=r.secret("ATTACHMENT_S3_ACCESS_KEY_ID"),
            attachment_s3_secret_access_key=r.secret("ATTACHMENT_S3_SECRET_ACCESS_KEY"),
            attachment_max_bytes=r.integer("ATTACHMENT_MAX_BYTES", d.attachment_max_bytes, minimum=1, maximum=1 << 30),
            attachment_allowed_types=_attachment_types(r.items("ATTACHMENT_ALLOWED_TYPES", d.attachment_allowed_types)),
            attachment_signing_secret=_signing_secret(r.secret("ATTACHMENT_SIGNING_SECRET")),
            attachment_url_ttl_seconds=r.integer(
                "ATTACHMENT_URL_TTL_SECONDS", d.attachment_url_ttl_seconds, minimum=60, maximum=86_400
            ),
            attachment_model_image_bytes=r.integer(
                "ATTACHMENT_MODEL_IMAGE_BYTES", d.attachment_model_image_bytes, minimum=0, maximum=20 * 1024 * 1024
            ),
            attachment_model_text_chars=r.integer(
                "ATTACHMENT_MODEL_TEXT_CHARS", d.attachment_model_text_chars, minimum=0, maximum=1_000_000
            ),
            public_base_url=r.url("PUBLIC_BASE_URL", schemes=("http", "https")),
            redis_url=_redis_url(r),
            rate_limit_chat_per_minute=r.integer(
                "RATE_LIMIT_CHAT_PER_MINUTE", d.rate_limit_chat_per_minute, minimum=0, maximum=100_000
            ),
            rate_limit_uploads_per_minute=r.integer(
                "RATE_LIMIT_UPLOADS_PER_MINUTE", d.rate_limit_uploads_per_minute, minimum=0, maximum=100_000
            ),
            rate_limit_anonymous_per_minute=r.integer(
                "RATE_LIMIT_ANONYMOUS_PER_MINUTE", d.rate_limit_anonymous_per_minute, minimum=0, maximum=100_000
            ),
            trusted_proxies=_trusted_proxies(r.items("TRUSTED_PROXIES", d.trusted_proxies)),
            metrics_token=r.secret("METRICS_TOKEN"),
            prometheus_multiproc_dir=r.optional("PROMETHEUS_MULTIPROC_DIR"),
            shutdown_grace_seconds=r.number(
                "SHUTDOWN_GRACE_SECONDS", d.shutdown_grace_seconds, minimum=0.0, maximum=600.0
            ),
            auth_dev_allow_network=r.boolean("AUTH_DEV_ALLOW_NETWORK", d.auth_dev_allow_network),
            quota_threads_per_user=r.integer(
                "QUOTA_THREADS_PER_USER", d.quota_threads_per_user, minimum=0, maximum=10_000_000
            ),
            quota_items_per_thread=r.integer(
                "QUOTA_ITEMS_PER_THREAD", d.quota_items_per_thread, minimum=0, maximum=10_000_000
            ),
            quota_tasks_per_user=r.integer(
                "QUOTA_TASKS_PER_USER", d.quota_tasks_per_user, minimum=0, maximum=10_000_000
            ),
            quota_attachment_bytes_per_user=r.integer(
                "QUOTA_ATTACHMENT_BYTES_PER_USER", d.quota_attachment_bytes_per_user, minimum=0, maximum=1 << 50
            ),
            max_thread_title_chars=r.integer(
                "MAX_THREAD_TITLE_CHARS", d.max_thread_title_chars, minimum=1, maximum=10_000
            ),
            max_message_chars=r.integer("MAX_MESSAGE_CHARS", d.max_message_chars, minimum=1, maximum=1_000_000),
        )
        settings.check_dev_auth_host(settings.host)
        return settings


def pool_for_streams(max_streams: int) -> int:
    """The default pool size (and overflow) of a worker that admits `max_streams` streams.

    A stream holds a connection only for each store statement (~1 ms on the hot path, never
    while the model is thinking), so connections in use stay far below the open streams: at the
    default limit of 50 (`DEFAULT_MAX_STREAMS_PER_WORKER`) the measured peak is README's
    "Capacity" figure. One connection per ten admitted streams, never fewer than ten, plus as
    many again as overflow, leaves room for bursts of turns starting together and for REST
    requests beside them.
    """
    return max(10, math.ceil(max_streams / 10))


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address to bind) is reachable only from this machine."""
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


MODEL_ID_MAX_CHARS = 128


def _models(r: _Reader, default: str) -> tuple[str, tuple[str, ...]]:
    """MODEL and MODEL_CHOICES: the default model, and the models a user may choose from.

    With MODEL_CHOICES set and MODEL unset, the first choice is the default; MODEL set must be one
    of the choices (the default is always offered, and nothing else is used without being offered).
    """
    explicit = r.raw("MODEL")
    raw = r.raw("MODEL_CHOICES")
    if raw is None:
        return explicit or default, ()
    accepts = "accepts comma-separated model ids such as gpt-5-mini,gpt-5"
    choices = tuple(part.strip() for part in raw.split(","))
    for choice in choices:
        if not choice:
            raise SettingsError(f"MODEL_CHOICES={raw!r} contains an empty model id: {accepts}")
        if len(choice) > MODEL_ID_MAX_CHARS or any(c.isspace() or not c.isprintable() for c in choice):
            raise SettingsError(
                f"MODEL_CHOICES contains {choice[:MODEL_ID_MAX_CHARS]!r}: a model id has no spaces and at most "
                f"{MODEL_ID_MAX_CHARS} characters; {accepts}"
            )
    duplicates = sorted({choice for choice in choices if choices.count(choice) > 1})
    if duplicates:
        raise SettingsError(f"MODEL_CHOICES lists {', '.join(duplicates)} more than once: {accepts}, each once")
    if explicit is not None and explicit not in choices:
        raise SettingsError(
            f"MODEL_CHOICES does not include MODEL={explicit!r}: the default model must be one of the choices; "
            "add it to MODEL_CHOICES, or unset MODEL to make the first choice the default"
        )
    return explicit or choices[0], choices


def _time_zone(value: str) -> str:
    try:
        return parse_time_zone(value, field="DEFAULT_TIME_ZONE", source="environment")
    except DomainError:
        raise SettingsError(
            f"DEFAULT_TIME_ZONE={value!r} is invalid: accepts an IANA time zone name such as UTC, "
            "Europe/Berlin or Asia/Karachi"
        ) from None


def _redis_url(r: _Reader) -> Secret | None:
    value = r.raw("REDIS_URL")
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in {"redis", "rediss", "unix"} or not (parts.netloc or parts.path):
        raise SettingsError(
            f"REDIS_URL={_redact_url(value)!r} is invalid: accepts redis://host:port/db or rediss://..."
        )
    return Secret(value)


def _storage_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme == "s3" and parts.netloc:
        return value.rstrip("/")
    if parts.scheme == "file" and parts.path.startswith("/") and not parts.netloc:
        return value
    if not parts.scheme and not parts.netloc:
        return value
    raise SettingsError(
        f"ATTACHMENT_STORAGE_URL={value!r} is invalid: accepts a directory path, file:///absolute/dir "
        "or s3://bucket/prefix"
    )


def _attachment_types(values: tuple[str, ...]) -> tuple[str, ...]:
    types = tuple(dict.fromkeys(v.lower() for v in values))
    unknown = [t for t in types if t not in SUPPORTED_ATTACHMENT_TYPES]
    if unknown or not types:
        raise SettingsError(
            f"ATTACHMENT_ALLOWED_TYPES contains {', '.join(unknown) or 'nothing'}: accepts a comma-separated "
            f"subset of {', '.join(SUPPORTED_ATTACHMENT_TYPES)} (types whose content can be verified)"
        )
    return types


def _signing_secret(secret: Secret | None) -> Secret | None:
    if secret is not None and len(secret.get()) < 32:
        raise SettingsError("ATTACHMENT_SIGNING_SECRET is invalid: accepts a secret of at least 32 characters")
    return secret


def _trusted_proxies(values: tuple[str, ...]) -> tuple[str, ...]:
    networks = []
    for value in values:
        try:
            networks.append(str(ipaddress.ip_network(value, strict=False)))
        except ValueError:
            raise SettingsError(
                f"TRUSTED_PROXIES contains {value!r}: accepts comma-separated IP addresses or CIDR networks "
                "such as 10.0.0.5,10.1.0.0/16"
            ) from None
    return tuple(networks)


def _cors(origins: tuple[str, ...]) -> tuple[str, ...]:
    for origin in origins:
        if origin == "*":
            raise SettingsError(
                "CORS_ORIGINS='*' is invalid: bearer-token APIs need an explicit allowlist; "
                "accepts comma-separated origins such as https://app.example.com"
            )
        parts = urlsplit(origin)
        if parts.scheme not in {"http", "https"} or not parts.netloc or parts.path not in {"", "/"}:
            raise SettingsError(
                f"CORS_ORIGINS contains {origin!r}: accepts comma-separated origins such as https://app.example.com"
            )
    return tuple(o.rstrip("/") for o in origins)


def _redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url
