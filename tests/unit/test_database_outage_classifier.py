"""One answer to "is the database out?": the stores' retries and the 503 of `app.http.problems`
read the same classifier (`app.store.connections`), so they cannot disagree on a driver error."""

from __future__ import annotations

import asyncpg.exceptions
import pytest
from advanced_alchemy.exceptions import IntegrityError, RepositoryError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.http import problems
from app.store.connections import CONNECTION_LOST_ERRORS, connection_died, database_unavailable


class _AdapterError(Exception):
    """Stands in for SQLAlchemy's asyncpg adapter `Error`, raised from the driver's error."""


def _as_sqlalchemy_raises(driver_error: Exception, *, invalidated: bool = False) -> DBAPIError:
    adapted = _AdapterError(f"{type(driver_error)}: {driver_error}")
    adapted.__cause__ = driver_error
    return DBAPIError("SELECT 1", None, adapted, connection_invalidated=invalidated)


@pytest.mark.parametrize("name", sorted(CONNECTION_LOST_ERRORS))
def test_each_listed_error_is_asyncpgs_and_means_an_outage_to_both_readers(name: str) -> None:
    driver_class = getattr(asyncpg.exceptions, name, None)
    assert driver_class is not None, f"asyncpg {asyncpg.__version__} has no {name}: fix CONNECTION_LOST_ERRORS"
    error = _as_sqlalchemy_raises(driver_class("gone"))
    wrapped = IntegrityError("An integrity error occurred")  # how Advanced Alchemy re-raises it
    wrapped.__cause__ = error
    for exc in (error, wrapped):
        assert connection_died(exc), name
        assert database_unavailable(exc), name


def test_the_error_map_reads_the_stores_classifier() -> None:
    assert problems.database_unavailable is database_unavailable


def test_a_disconnect_sqlalchemy_flagged_is_an_outage_whatever_the_driver_said() -> None:
    closed = _as_sqlalchemy_raises(asyncpg.exceptions.InterfaceError("connection is closed"), invalidated=True)
    assert connection_died(closed)
    assert database_unavailable(closed)


@pytest.mark.parametrize(
    "driver_error",
    [
        asyncpg.exceptions.InterfaceError("cannot perform operation: another operation is in progress"),
        asyncpg.exceptions.UniqueViolationError("duplicate key"),
        asyncpg.exceptions.UndefinedTableError("relation does not exist"),
    ],
    ids=["misuse", "constraint", "schema"],
)
def test_a_bug_or_a_refused_statement_is_not_an_outage(driver_error: Exception) -> None:
    error = _as_sqlalchemy_raises(driver_error)
    assert not connection_died(error)
    assert not database_unavailable(error)


def test_unreachable_or_no_free_connection_is_unavailable_but_only_a_lost_one_is_retried_as_such() -> None:
    refused = RepositoryError("could not connect")
    refused.__cause__ = ConnectionRefusedError()
    assert database_unavailable(refused)
    assert connection_died(refused)
    assert database_unavailable(PoolTimeout("QueuePool limit reached"))
    assert not connection_died(PoolTimeout("QueuePool limit reached"))
    assert database_unavailable(DBAPIError("SELECT 1", None, TimeoutError()))
    assert not database_unavailable(ValueError("a bug"))
