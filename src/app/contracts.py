"""msgspec contracts: every JSON body that is not ChatKit's own protocol.

Inputs forbid unknown fields so a typo is a 400 naming it instead of a silently ignored value.
"""

from __future__ import annotations

from typing import Literal

import msgspec


class Struct(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Base of every response body."""


class Input(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of every request body."""


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


class Readiness(Struct, kw_only=True):
    status: Literal["ready", "unavailable"]
    database: Literal["ok", "unreachable"]
    detail: str | None = None


class HostedModeStatus(Struct, kw_only=True):
    ready: bool
    missing: list[str]
    detail: str


class SelfHostedModeStatus(Struct, kw_only=True):
    ready: bool
    endpoint: str
    model_provider: str
    model: str
    detail: str


class ChatKitHealth(Struct, kw_only=True):
    status: Literal["ok"]
    hosted: HostedModeStatus
    self_hosted: SelfHostedModeStatus
    auth_mode: str
