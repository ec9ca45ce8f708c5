# ruff: noqa: E501 -- the utterance table reads best one row per line
"""The offline model, through the real Agents SDK runner, the real task tools and a real database.

Each row: what the person says, the tool calls it must produce (in order), and the effect on
their tasks or the reply. "Today" is fixed at Sunday 2026-11-22 for the model and the tools.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from agents import RunConfig, Runner
from agents.items import HandoffCallItem, ToolCallItem
from sqlalchemy.ext.asyncio import async_sessionmaker

from app.agents.assistant import Assistant
from app.agents.offline.intents import language_of
from app.agents.offline.model import OfflineModel
from app.agents.providers import OfflineModelProvider
from app.agents.tools import AgentContext
from app.contracts import TaskCreate
from app.services.tasks import TaskQuery, TaskService

TODAY = dt.date(2026, 11, 22)
HANDOFF = "transfer_to_urdu_specialist"


@dataclass
class Outcome:
    tasks: dict[int, Any]  # number -> Task after the turn
    reply: str
    calls: list[tuple[str, str]]


Check = Callable[[Outcome], bool]


def task(number: int, **expected: Any) -> Check:
    def check(outcome: Outcome) -> bool:
        found = outcome.tasks.get(number)
        return found is not None and all(getattr(found, k) == v for k, v in expected.items())

    return check


def gone(number: int) -> Check:
    return lambda outcome: number not in outcome.tasks


def says(*fragments: str) -> Check:
    return lambda outcome: all(f in outcome.reply for f in fragments)


def unchanged(outcome: Outcome) -> bool:
    return len(outcome.tasks) == 4 and not outcome.tasks[1].completed and outcome.tasks[4].completed


def urdu(outcome: Outcome) -> bool:
    return language_of(outcome.reply) == "ur"


D = dt.date
ENGLISH: list[tuple[str, list[str], list[Check]]] = [
    (
        "add a task to buy milk tomorrow, high priority",
        ["add_task"],
        [task(5, title="Buy milk", due_date=D(2026, 11, 23), priority="high")],
    ),
    (
        "remind me to call the dentist on friday",
        ["add_task"],
        [task(5, title="Call the dentist", due_date=D(2026, 11, 27))],
    ),
    (
        "Add task: Submit expenses by 2026-12-01 #work",
        ["add_task"],
        [task(5, title="Submit expenses", tags=["work"], due_date=D(2026, 12, 1))],
    ),
    (
        "create a new task called Plan trip in 3 days",
        ["add_task"],
        [task(5, title="Plan trip", due_date=D(2026, 11, 25))],
    ),
    (
        "I need to renew my passport next month, urgent",
        ["add_task"],
        [task(5, title="Renew my passport", priority="high", due_date=D(2026, 12, 22))],
    ),
    ("add buy eggs", ["add_task"], [task(5, title="Buy eggs", priority="medium", due_date=None)]),
    (
        "new task: water the plants every monday",
        ["add_task"],
        [task(5, title="Water the plants every monday", due_date=None)],
    ),
    ("add a task to pay rent on 2026-02-30", [], [unchanged, says("not a real date")]),
    ("todo: clean the garage, low priority", ["add_task"], [task(5, title="Clean the garage", priority="low")]),
    (
        "jot down read chapter 4 for next week",
        ["add_task"],
        [task(5, title="Read chapter 4", due_date=D(2026, 11, 29))],
    ),
    ("show my tasks", ["list_tasks"], [says("3 open tasks", "Buy groceries", "Write report", "Call mom")]),
    ("what's overdue?", ["list_tasks"], [says("Buy groceries"), lambda o: "Write report" not in o.reply]),
    ("list completed tasks", ["list_tasks"], [says("Pay rent"), lambda o: "Call mom" not in o.reply]),
    ("show high priority tasks", ["list_tasks"], [says("Buy groceries"), lambda o: "Call mom" not in o.reply]),
    ("what is due today?", ["list_tasks"], [says("Write report"), lambda o: "Buy groceries" not in o.reply]),
    ("find tasks about report", ["list_tasks"], [says("Write report"), lambda o: "Call mom" not in o.reply]),
    ("tasks tagged work", ["list_tasks"], [says("Write report"), lambda o: "Buy groceries" not in o.reply]),
    ("show all my tasks", ["list_tasks"], [says("Pay rent", "Call mom")]),
    ("what do I have today?", ["list_tasks"], [says("Write report")]),
    ("anything overdue?", ["list_tasks"], [says("Buy groceries")]),
    ("search for mom", ["list_tasks"], [says("Call mom"), lambda o: "Write report" not in o.reply]),
    ("summary", ["task_summary"], [says("3 open", "1 completed", "1 overdue", "1 due today")]),
    ("how many tasks do I have?", ["task_summary"], [says("3 open")]),
    ("give me an overview", ["task_summary"], [says("completed")]),
    ("mark 3 done", ["complete_task"], [task(3, completed=True), says("Marked #3")]),
    ("complete #2", ["complete_task"], [task(2, completed=True)]),
    ("I finished the report", ["list_tasks", "complete_task"], [task(2, completed=True)]),
    ("tick off call mom", ["list_tasks", "complete_task"], [task(3, completed=True)]),
    ("reopen task 4", ["update_task"], [task(4, completed=False), says("Reopened #4")]),
    ("mark 4 as not done", ["update_task"], [task(4, completed=False)]),
    ("delete the groceries task", ["delete_task"], [gone(1), says("Deleted #1")]),
    ("delete 3", ["delete_task"], [gone(3)]),
    ("remove task 2", ["delete_task"], [gone(2)]),
    ("delete the unicorn task", ["delete_task"], [unchanged, says("No task matches “unicorn”")]),
    ("delete the re task", ["delete_task"], [unchanged, says("Several tasks match", "Pick the one to delete")]),
    ("mark 42 done", ["complete_task"], [unchanged, says("no task #42")]),
    ("move task 3 to friday", ["update_task"], [task(3, due_date=D(2026, 11, 27))]),
    ("rename task 2 to Write the final report", ["update_task"], [task(2, title="Write the final report")]),
    ("set task 3 priority to high", ["update_task"], [task(3, priority="high")]),
    ("remove the due date from task 1", ["update_task"], [task(1, due_date=None, title="Buy groceries")]),
    ("show me task 2", ["get_task"], [says("#2 “Write report”", "Quarterly numbers")]),
    ("hello", [], [unchanged, says("Hi!")]),
    ("what's the weather like?", [], [unchanged, says("offline assistant", "OPENAI_API_KEY")]),
    ("help", [], [says("offline assistant")]),
    ("delete", [], [unchanged, says("Which task")]),
]

URDU: list[tuple[str, list[str], list[Check]]] = [
    ("دودھ خریدنے کا کام شامل کریں", [HANDOFF, "add_task"], [task(5, title="دودھ خریدنا"), urdu]),
    ("کل اہم: رپورٹ جمع کرنے کا کام شامل کریں", [HANDOFF, "add_task"], [task(5, title="رپورٹ جمع کرنا", priority="high", due_date=D(2026, 11, 23)), urdu]),
    ("میرے کام دکھائیں", [HANDOFF, "list_tasks"], [says("Buy groceries"), urdu]),
    ("کام 3 مکمل کریں", [HANDOFF, "complete_task"], [task(3, completed=True), urdu]),
    ("کام ۲ حذف کریں", [HANDOFF, "delete_task"], [gone(2), urdu]),
    ("خلاصہ", [HANDOFF, "task_summary"], [says("3"), urdu]),
    ("تاخیر والے کام دکھائیں", [HANDOFF, "list_tasks"], [says("Buy groceries"), lambda o: "Call mom" not in o.reply, urdu]),
    ("کام 4 دوبارہ کھولیں", [HANDOFF, "update_task"], [task(4, completed=False), urdu]),
    ("السلام علیکم", [HANDOFF], [unchanged, urdu]),
    ("مدد", [HANDOFF], [urdu, says("آف لائن")]),
    ("مکمل شدہ کام دکھائیں", [HANDOFF, "list_tasks"], [says("Pay rent"), urdu]),
]  # fmt: skip


async def _seed(session_maker: Any, user: str) -> None:
    async with TaskService.begin(session_maker, user, clock=lambda: TODAY) as service:
        await service.create(
            TaskCreate(title="Buy groceries", due_date=D(2026, 11, 20), priority="high", tags=["home"])
        )
        await service.create(
            TaskCreate(title="Write report", description="Quarterly numbers", due_date=TODAY, tags=["work"])
        )
        await service.create(TaskCreate(title="Call mom", priority="low"))
        rent = await service.create(TaskCreate(title="Pay rent"))
        await service.complete(rent.id)


async def _run(session_maker: Any, text: str, *, seed: bool = True) -> Outcome:
    if seed:
        await _seed(session_maker, "alice")
    assistant = Assistant(provider=OfflineModelProvider(), model_name="offline")
    model = OfflineModel(today=lambda: TODAY)
    context = AgentContext(user_id="alice", session_maker=session_maker, clock=lambda: TODAY)
    result = await Runner.run(
        assistant.orchestrator,
        text,
        context=context,
        run_config=RunConfig(model=model, tracing_disabled=True),
        max_turns=8,
    )
    calls = []
    for item in result.new_items:
        if isinstance(item, ToolCallItem | HandoffCallItem):
            raw = item.raw_item
            calls.append((str(getattr(raw, "name", "")), str(getattr(raw, "arguments", ""))))
    async with TaskService.begin(session_maker, "alice", clock=lambda: TODAY) as service:
        listing = await service.list(TaskQuery(status="all", limit=100))
    return Outcome(tasks={t.number: t for t in listing.items}, reply=str(result.final_output), calls=calls)


@pytest.mark.parametrize(("text", "tools", "checks"), ENGLISH + URDU, ids=[row[0] for row in ENGLISH + URDU])
async def test_utterance(tmp_path: Any, text: str, tools: list[str], checks: list[Check]) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    from app.store.models import Base

    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/offline.db")
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    try:
        outcome = await _run(async_sessionmaker(engine, expire_on_commit=False), text)
    finally:
        await engine.dispose()
    assert [name for name, _ in outcome.calls] == tools, outcome.calls
    for index, check in enumerate(checks):
        assert check(outcome), f"check {index} failed; reply={outcome.reply!r} tasks={outcome.tasks}"


def test_table_size() -> None:
    assert len(ENGLISH) >= 40
    assert len(URDU) >= 10


async def test_other_users_tasks_are_invisible_to_the_offline_assistant(tmp_path: Any) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    from app.store.models import Base

    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/offline.db")
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    session_maker = async_sessionmaker(engine, expire_on_commit=False)
    try:
        await _seed(session_maker, "bob")
        outcome = await _run(session_maker, "delete 1", seed=False)
        assert says("no task #1")(outcome)
        async with TaskService.begin(session_maker, "bob") as service:
            assert (await service.list(TaskQuery(status="all"))).total == 4
    finally:
        await engine.dispose()
