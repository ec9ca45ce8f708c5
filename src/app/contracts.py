"""msgspec contracts: every JSON body that is not ChatKit's own protocol.

Inputs forbid unknown fields so a typo is a 400 naming it instead of a silently ignored value.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Annotated, Final, Literal

import msgspec

from app.core.text import require_storable


class Struct(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Base of every response body."""


class Input(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of every request body.

    No string of a body may hold a character the database cannot store (NUL, an unpaired
    surrogate): decoding refuses it as a 400 naming the field, before any handler runs.
    """

    def __post_init__(self) -> None:
        for name in self.__struct_fields__:
            require_storable(getattr(self, name), name)


class Problem(Struct, kw_only=True):
    """An RFC 9457 problem document: what went wrong and what to do next."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    request_id: str | None = None
    errors: list[dict[str, str]] | None = None


class Liveness(Struct, kw_only=True):
    status: Literal["ok"]
    version: str


class StreamLoad(Struct, kw_only=True):
    """The answering worker's ChatKit streams against its admission limit (CHATKIT_MAX_STREAMS)."""

    open: int
    limit: int
    waiting: int


class Readiness(Struct, kw_only=True):
    # "saturated": every stream slot of the answering worker is taken, so a new turn would be
    # refused (503) — a load balancer should send new conversations elsewhere for a moment.
    status: Literal["ready", "saturated", "unavailable"]
    database: Literal["ok", "unreachable"]
    # "degraded": REDIS_URL is set but Redis does not answer, so every limit is counted in this
    # instance's memory (still enforced, not shared); the service works, so `/ready` stays 200.
    rate_limits: Literal["ok", "degraded (in-memory, Redis unreachable)"]
    streams: StreamLoad | None = None
    detail: str | None = None


class HostedModeStatus(Struct, kw_only=True):
    ready: bool
    missing: list[str]
    detail: str


# The ChatKit icons the composer's tools show: names from `ChatKitIcon` of @openai/chatkit, which is
# what ChatKit's `composer.tools[].icon` takes. The spec lists them, so examples/react's `tsc` (its
# client is generated from the spec) fails on a name ChatKit does not know; add one here to use it.
ComposerToolIcon = Literal["plus", "search", "calendar", "chart"]


class ComposerToolOption(Struct, kw_only=True):
    """A tool the composer offers; choosing it (`inference_options.tool_choice.id`) makes the turn call that tool."""

    id: str
    label: str
    icon: ComposerToolIcon  # a ChatKit icon name
    placeholder: str
    # The composer's "/" command that chooses it: "add" for `/add` (ChatKit's `commands` option).
    command: str


class ComposerModelOption(Struct, kw_only=True):
    """A model the composer offers (`inference_options.model`); `default` is MODEL."""

    id: str
    label: str
    default: bool


class ComposerOptions(Struct, kw_only=True):
    """What the page's composer may offer: `composer.tools` and `composer.models` of ChatKit's options.
    `models` is empty unless MODEL_CHOICES is set; a turn that names anything else is refused (400)."""

    tools: list[ComposerToolOption]
    models: list[ComposerModelOption]


class AttachmentOptions(Struct, kw_only=True):
    """What `attachments.create` accepts (ATTACHMENT_MAX_BYTES, ATTACHMENT_ALLOWED_TYPES): a front end
    gives them to ChatKit as `composer.attachments.maxSize` and `accept`, so a file the server would
    refuse (413, 415) is not offered or uploaded. `accept` maps each allowed MIME type to the file name
    extensions that say it (the shape of the file picker's `accept`)."""

    max_bytes: int
    accept: dict[str, list[str]]


class ModelCallStatus(Struct, kw_only=True):
    """The last call this worker made to one model: `ok`, or the kind of failure (`rate_limit`,
    `timeout`, `auth`, `unreachable`, ...; never the provider's message), and how long it took."""

    model: str
    status: str
    latency_ms: float | None
    at: dt.datetime


class SelfHostedModeStatus(Struct, kw_only=True):
    ready: bool
    endpoint: str
    model_provider: str
    model: str
    detail: str
    # Whether `input.transcribe` is configured (TRANSCRIPTION_MODEL and OPENAI_API_KEY): the page
    # turns on ChatKit's `composer.dictation` only then.
    dictation: bool
    composer: ComposerOptions
    attachments: AttachmentOptions
    # The last call to each model answered by this worker since it started (empty before the first).
    model_calls: list[ModelCallStatus] = []


class ChatKitHealth(Struct, kw_only=True):
    """Which ChatKit modes are configured. `chatkit_ready`, `message` and `service` are the fields
    the original TaskPilotAI deployment guide checks; `chatkit_ready` is `hosted.ready`. `message`
    names the variables that are or are not set, never their values. Configured is not verified:
    minting a session is what proves the key and workflow work."""

    status: Literal["ok"]
    service: Literal["chatkit"]
    chatkit_ready: bool
    message: str
    hosted: HostedModeStatus
    self_hosted: SelfHostedModeStatus
    auth_mode: str


# --- Tasks -------------------------------------------------------------------------------

TaskPriority = Literal["low", "medium", "high"]
TaskStatus = Literal["open", "completed", "all"]
TaskSort = Literal["created_at", "updated_at", "due_date", "priority", "number", "title"]
SortOrder = Literal["asc", "desc"]


@dataclass(frozen=True, slots=True)
class TaskLimits:
    """How long a task's texts may be: the one table the contracts below, the task service, the
    assistant's tools (and their descriptions, tests/unit/test_task_limits.py) and the widgets read."""

    title: int = 200
    description: int = 5000
    tags: int = 20  # per task
    tag: int = 40
    search: int = 200  # a listing's search text


TASK_LIMITS: Final = TaskLimits()

TaskTitle = Annotated[
    str,
    msgspec.Meta(min_length=1, max_length=TASK_LIMITS.title, description=f"1 to {TASK_LIMITS.title} characters"),
]
TaskDescription = Annotated[
    str, msgspec.Meta(max_length=TASK_LIMITS.description, description=f"Up to {TASK_LIMITS.description:,} characters")
]
TaskTag = Annotated[
    str, msgspec.Meta(min_length=1, max_length=TASK_LIMITS.tag, description=f"1 to {TASK_LIMITS.tag} characters")
]
TaskTags = Annotated[
    list[TaskTag],
    msgspec.Meta(
        max_length=TASK_LIMITS.tags,
        description=f"Up to {TASK_LIMITS.tags} tags; stored trimmed, lower-cased, without duplicates",
    ),
]


class Task(Struct, kw_only=True):
    """A task. `number` is the short per-user handle people use ("mark 3 done")."""

    id: uuid.UUID
    number: int
    title: str
    description: str | None
    priority: TaskPriority
    due_date: dt.date | None
    tags: list[str]
    completed: bool
    completed_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime


class TaskCreate(Input, kw_only=True):
    title: TaskTitle
    description: TaskDescription | None = None
    priority: TaskPriority = "medium"
    due_date: dt.date | None = None
    tags: TaskTags = msgspec.field(default_factory=list)


class TaskUpdate(Input, kw_only=True):
    """A partial update: absent fields stay as they are; `null` clears `description` or `due_date`."""

    title: TaskTitle | msgspec.UnsetType = msgspec.UNSET
    description: TaskDescription | msgspec.UnsetType | None = msgspec.UNSET
    priority: TaskPriority | msgspec.UnsetType = msgspec.UNSET
    due_date: dt.date | msgspec.UnsetType | None = msgspec.UNSET
    tags: TaskTags | msgspec.UnsetType = msgspec.UNSET
    completed: bool | msgspec.UnsetType = msgspec.UNSET


class TaskList(Struct, kw_only=True):
    """One page of tasks. Pass `next_cursor` back as `cursor` for the next page; absent on the last page."""

    items: list[Task]
    total: int | None = None
    next_cursor: str | None = None


class TaskPriorityCounts(Struct, kw_only=True):
    low: int
    medium: int
    high: int


class TaskSummary(Struct, kw_only=True):
    """Counts over the user's tasks. `overdue`, `due_today` and `by_priority` count open tasks only."""

    today: dt.date
    total: int
    open: int
    completed: int
    overdue: int
    due_today: int
    by_priority: TaskPriorityCounts


# --- Hosted ChatKit sessions ---------------------------------------------------------------


class ChatKitSession(Struct, kw_only=True):
    """A hosted ChatKit session for the signed-in user. Give `client_secret` to ChatKit's
    `getClientSecret()`; it stops working at `expires_at` or when the session is cancelled."""

    client_secret: str
    session_id: str
    expires_at: dt.datetime
    status: Annotated[
        Literal["success"],
        msgspec.Meta(description="Always `success`: the field the TaskPilotAI deployment guide's session check reads"),
    ]


class ChatKitSessionRefresh(Input, kw_only=True):
    """Which session a refresh replaces: its client secret or its id (at most one). With neither,
    a refresh simply mints a new session."""

    current_client_secret: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)] | None = None
    session_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None


# --- Attachments ---------------------------------------------------------------------------


class AttachmentInfo(Struct, kw_only=True):
    """An attachment whose bytes have arrived. `mime_type` is what the content was verified to be;
    `url` (and `preview_url` for images) is a signed link that works without a bearer token
    until it expires."""

    id: str
    type: Literal["file", "image"]
    name: str
    mime_type: str
    size: int
    status: Literal["pending", "uploaded"]
    url: str
    preview_url: str | None = None
    thread_id: str | None = None
