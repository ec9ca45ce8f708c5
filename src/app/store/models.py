"""Tables. Every user-data table carries `user_id` first in its primary key and foreign keys,
so the schema can be distributed by user (Citus `create_distributed_table(..., 'user_id')`)
without rewrites, and every query can (and must) filter by it.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from typing import Any

from advanced_alchemy.base import DefaultBase
from advanced_alchemy.types import DateTimeUTC, JsonB
from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy import Uuid as SAUuid
from sqlalchemy.orm import Mapped, mapped_column

from app.core.clock import utcnow
from app.core.ids import uuid7

USER_ID_LENGTH = 128
ID_LENGTH = 64


class _MonotonicSequence:
    """Strictly increasing 63-bit numbers: nanoseconds since the epoch, bumped on ties.

    ChatKit orders items by `created_at`, whose values tie; `seq` breaks those ties in
    insertion order. It is generated here rather than by a database sequence so SQLite
    and PostgreSQL behave the same, and it stays roughly ordered across instances.
    """

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            self._last = max(self._last + 1, time.time_ns())
            return self._last


next_seq = _MonotonicSequence()


class Base(DefaultBase):
    """The declarative base of every TaskPilot table (Advanced Alchemy's registry and naming)."""

    __abstract__ = True


class ChatThread(Base):
    __tablename__ = "chat_threads"
    __table_args__ = (
        Index("ix_chat_threads_user_order", "user_id", "created_at", "seq"),
        Index("ix_chat_threads_user_updated", "user_id", "updated_at"),
        # Retention (`taskpilot cleanup`) looks for threads untouched since a date, across users.
        Index("ix_chat_threads_updated", "updated_at"),
    )

    user_id: Mapped[str] = mapped_column(String(USER_ID_LENGTH), primary_key=True)
    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, default=next_seq, nullable=False)
    title: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTimeUTC(timezone=True), default=utcnow, onupdate=utcnow, nullable=False
    )
    data: Mapped[dict[str, Any]] = mapped_column(JsonB, nullable=False)
    # The turn running on this thread, if any (`ChatKitStore.claim_turn`): a lease, not a lock held
    # on a connection, so a model's minutes of thinking hold no database connection, it works
    # through PgBouncer's transaction pooling, and a killed worker's turn frees the thread when
    # its lease expires (the holder renews it while the turn runs).
    turn_lease: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True)
    turn_lease_expires_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)


class ChatItem(Base):
    __tablename__ = "chat_items"
    __table_args__ = (
        ForeignKeyConstraint(
            ["user_id", "thread_id"],
            ["chat_threads.user_id", "chat_threads.id"],
            ondelete="CASCADE",
            name="fk_chat_items_thread",
        ),
        Index("ix_chat_items_thread_order", "user_id", "thread_id", "created_at", "seq"),
    )

    user_id: Mapped[str] = mapped_column(String(USER_ID_LENGTH), primary_key=True)
    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    thread_id: Mapped[str] = mapped_column(String(ID_LENGTH), nullable=False)
    type: Mapped[str] = mapped_column(String(40), nullable=False)
    seq: Mapped[int] = mapped_column(BigInteger, default=next_seq, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow, nullable=False)
    data: Mapped[dict[str, Any]] = mapped_column(JsonB, nullable=False)


class ChatAttachment(Base):
    __tablename__ = "chat_attachments"
    __table_args__ = (
        ForeignKeyConstraint(
            ["user_id", "thread_id"],
            ["chat_threads.user_id", "chat_threads.id"],
            ondelete="CASCADE",
            name="fk_chat_attachments_thread",
        ),
        Index("ix_chat_attachments_thread", "user_id", "thread_id"),
        Index("ix_chat_attachments_status_created", "status", "created_at"),
    )

    user_id: Mapped[str] = mapped_column(String(USER_ID_LENGTH), primary_key=True)
    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    thread_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    mime_type: Mapped[str] = mapped_column(String(255), nullable=False)
    # pending: metadata only (two-phase upload not finished); uploaded: bytes are stored.
    status: Mapped[str] = mapped_column(String(16), default="pending", nullable=False)
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    storage_key: Mapped[str | None] = mapped_column(String(512), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow, nullable=False)
    data: Mapped[dict[str, Any]] = mapped_column(JsonB, nullable=False)


class ChatFeedback(Base):
    __tablename__ = "chat_feedback"
    __table_args__ = (
        ForeignKeyConstraint(
            ["user_id", "thread_id"],
            ["chat_threads.user_id", "chat_threads.id"],
            ondelete="CASCADE",
            name="fk_chat_feedback_thread",
        ),
        Index("ix_chat_feedback_thread", "user_id", "thread_id"),
    )

    user_id: Mapped[str] = mapped_column(String(USER_ID_LENGTH), primary_key=True)
    item_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    thread_id: Mapped[str] = mapped_column(String(ID_LENGTH), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTimeUTC(timezone=True), default=utcnow, onupdate=utcnow, nullable=False
    )


class HostedSession(Base):
    """One hosted ChatKit session minted for a user. The client secret is never stored."""

    __tablename__ = "hosted_sessions"
    __table_args__ = (
        Index("ix_hosted_sessions_user_created", "user_id", "created_at"),
        Index("ix_hosted_sessions_user_secret", "user_id", "secret_sha256"),
    )

    user_id: Mapped[str] = mapped_column(String(USER_ID_LENGTH), primary_key=True)
    session_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    # active | refreshed (replaced by a newer session) | cancelled
    status: Mapped[str] = mapped_column(String(16), default="active", nullable=False)
    # A fingerprint (SHA-256) of the client secret, so a refresh can name the old session by
    # its secret without the secret itself ever being stored.
    secret_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    workflow_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    replaced_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTimeUTC(timezone=True), default=utcnow, onupdate=utcnow, nullable=False
    )


class TaskRow(Base):
    """A user's task. `number` is the short per-user handle people use ("mark 3 done")."""

    __tablename__ = "tasks"
    __table_args__ = (
        UniqueConstraint("user_id", "number", name="uq_tasks_user_number"),
        Index("ix_tasks_user_created", "user_id", "created_at", "id"),
        Index("ix_tasks_user_completed_due", "user_id", "completed", "due_date"),
    )

    user_id: Mapped[str] = mapped_column(String(USER_ID_LENGTH), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(SAUuid(as_uuid=True), primary_key=True, default=uuid7)
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    priority: Mapped[str] = mapped_column(String(8), default="medium", nullable=False)
    due_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    tags: Mapped[list[str]] = mapped_column(JsonB, default=list, nullable=False)
    completed: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    completed_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTimeUTC(timezone=True), default=utcnow, onupdate=utcnow, nullable=False
    )


class UsageRow(Base):
    """The model tokens one user spent on one UTC day with one model, and in how many turns: what
    `QUOTA_TOKENS_PER_USER_PER_DAY` compares and `taskpilot usage export` bills. Added to by an
    upsert after each turn and each dictation (`app.store.usage`), never rewritten."""

    __tablename__ = "usage"

    user_id: Mapped[str] = mapped_column(String(USER_ID_LENGTH), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    # Part of input_tokens, served from the provider's prompt cache (billed lower).
    cached_input_tokens: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    # Part of output_tokens, spent on reasoning the user never sees.
    reasoning_tokens: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    turns: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    # The audio dictated with a model billed by duration (whisper-1), in whole milliseconds: an
    # integer adds exactly in the upsert on every database (a float sum would drift), and the
    # export shows seconds. Token-billed transcription models count in the token columns instead.
    transcription_ms: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0", nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTimeUTC(timezone=True), default=utcnow, onupdate=utcnow, nullable=False
    )
