"""Who is asking: the user context every store, service and tool is typed against.

`UserContext` is what persistence needs (whose data this is). `RequestContext` is the concrete
context the HTTP layer builds from a verified token; it lives here, free of any framework, so
stores and services can name it without importing the web layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from app.core.limits import Budget


class UserContext(Protocol):
    """What the store needs from a request context: whose data this is."""

    @property
    def user_id(self) -> str: ...


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Who is asking. Everything that touches user data takes its `user_id` from here."""

    user_id: str
    request_id: str = ""
    claims: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    # Scheme, host and root path the request came in on: links the browser follows (signed
    # attachment URLs) are built on it unless PUBLIC_BASE_URL says otherwise.
    base_url: str = field(default="", compare=False)
    # The IANA time zone the caller's dates mean (the `Time-Zone` header), None when not sent:
    # "today", "tomorrow" and "overdue" are then the UTC date (or what the thread remembers).
    time_zone: str | None = None
    # The client tools the caller says it answers (the `ChatKit-Client-Tools` header): only these
    # may be offered to the model. A stock ChatKit front end answers none.
    client_tools: frozenset[str] = frozenset()
    # What this request left of the user's chat rate limit (streaming ChatKit requests): the
    # stream warns the user when it is nearly spent.
    chat_budget: Budget | None = field(default=None, compare=False)
    # The id of a thread saved under the user's thread quota before a `threads.create` stream
    # opened (`UserLimits.reserve_new_thread`): the thread that request creates takes this id.
    reserved_thread_id: str | None = field(default=None, compare=False)
    # The turn lease that thread was saved holding (`app.agents.chatkit.turns.TurnLease`): the
    # request's turn runs under it without claiming it again.
    reserved_turn: Any = field(default=None, compare=False, repr=False)
    # What the user had spent of their daily token budget when the gate let this turn through
    # (`app.services.usage.BudgetUse`; None without a budget): the stream warns when it is nearly spent.
    token_budget: Any = field(default=None, compare=False)
