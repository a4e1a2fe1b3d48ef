"""Store calls under the request deadline: all members in one call, else one by one; partial results.

The store port is synchronous, so each call runs in a worker thread and is awaited with the
time left. A member whose store query fails (:data:`STORE_FAILURES`) or is still running at the
deadline is reported missing; its thread is abandoned (its result is discarded when it finishes).
Any other exception is a bug: it propagates unchanged, and the servicer answers INTERNAL.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from services.search.errors import SearchDeadlineExceeded, SearchUnavailable
from services.storage.port import Filters, MemberQuery, ScoredPoint, StoreError, VectorStore

log = logging.getLogger("vitrine.search")

# What a store adapter raises when the store fails (as opposed to a bug): these become UNAVAILABLE.
STORE_FAILURES: tuple[type[Exception], ...] = (StoreError, OSError)

T = TypeVar("T")


class Deadline:
    """An absolute point in event-loop time."""

    def __init__(self, seconds: float) -> None:
        self.at = asyncio.get_running_loop().time() + seconds

    def remaining(self) -> float:
        """Seconds left (0 when passed)."""
        return max(0.0, self.at - asyncio.get_running_loop().time())

    def check(self, what: str) -> float:
        """Seconds left, or SearchDeadlineExceeded naming the step that could not start."""
        left = self.remaining()
        if left <= 0.0:
            raise SearchDeadlineExceeded(f"deadline exceeded before {what}")
        return left


def in_thread(fn: Callable[..., T], *args: object) -> asyncio.Future[T]:
    """``fn(*args)`` in the loop's worker threads, as a future.

    A bare executor future, not ``asyncio.to_thread``: that wraps the call in a coroutine (a task
    per store call once awaited with a timeout) and copies the context, which store calls never read.
    """
    return asyncio.get_running_loop().run_in_executor(None, fn, *args)


async def call_store(
    deadline: Deadline, what: str, fn: Callable[..., T], *args: object, inline: bool = False
) -> T:
    """Run a blocking store call in a thread within the deadline; map store failures to search errors.

    ``inline`` (a store that :attr:`~VectorStore.holds_interpreter`): called on the loop's thread,
    which would wait for it anyway; a call that ends past the deadline is DEADLINE_EXCEEDED.
    """
    left = deadline.check(what)
    if inline:
        try:
            answer = fn(*args)
        except STORE_FAILURES as exc:
            raise SearchUnavailable(f"store: {what} failed: {exc}") from exc
        if deadline.remaining() <= 0.0:
            raise SearchDeadlineExceeded(f"store: {what} did not finish within the deadline")
        return answer
    try:
        return await asyncio.wait_for(in_thread(fn, *args), left)
    except TimeoutError as exc:
        raise SearchDeadlineExceeded(f"store: {what} did not finish within the deadline") from exc
    except STORE_FAILURES as exc:
        raise SearchUnavailable(f"store: {what} failed: {exc}") from exc


@dataclass
class MemberLists:
    """Ranked store hits per member that answered, and the members that did not."""

    collection: str = ""  # the collection that answered (the alias resolved)
    lists: dict[str, list[ScoredPoint]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # member -> reason
    timed_out: list[str] = field(default_factory=list)

    def missing(self, order: Sequence[str]) -> list[str]:
        """Members without a list, in ``order``."""
        return [m for m in order if m not in self.lists]

    def raise_if_empty(self) -> None:
        """No member answered: DEADLINE_EXCEEDED when all timed out, else UNAVAILABLE."""
        if self.lists:
            return
        if self.timed_out and not self.failed:
            raise SearchDeadlineExceeded(f"no member answered within the deadline: {self.timed_out}")
        reasons = {**self.failed, **dict.fromkeys(self.timed_out, "deadline exceeded")}
        raise SearchUnavailable(f"no member answered: {reasons}")


async def query_members(
    store: VectorStore,
    collection: str,
    vectors: Mapping[str, np.ndarray],
    members: Sequence[str],
    depth: int,
    filters: Filters | None,
    deadline: Deadline,
    payload_fields: Sequence[str] | None = None,
    reserve_s: float = 0.0,
    resolve: bool = False,
) -> MemberLists:
    """Query the members, collecting what comes back by the deadline.

    First all members in one store call (one round trip; per-call overhead dominates small
    queries), given half the time; inline for a store that :attr:`~VectorStore.holds_interpreter`
    (the loop could not run meanwhile anyway). If that call fails or is too slow, each member is
    queried on its own, in its own thread, so one failing or slow member costs only its own list
    (``partial``). ``payload_fields`` limits the payload keys of the hits (see :meth:`VectorStore.query`);
    ``reserve_s`` of the time left is kept for what the caller does next (at most half of it).
    With ``resolve``, ``collection`` may be an alias: it is resolved in the same worker thread as
    the query (one thread hop less) and the collection that answered is ``result.collection``.
    """
    left = deadline.check("querying the store")
    result = MemberLists(collection=collection)
    queries = []
    for member in members:
        if member in vectors:
            queries.append(MemberQuery(member, vectors[member], depth))
        else:
            result.failed[member] = "no query vector for this member"
    if not queries:
        return result
    budget = max(left / 2, left - reserve_s)

    def all_members() -> tuple[str, dict[str, list[ScoredPoint]]]:
        target = (store.resolve_alias(collection) or collection) if resolve else collection
        return target, store.query(target, queries, filters, payload_fields)

    answered = _inline(all_members) if store.holds_interpreter else await _within(all_members, budget / 2)
    if answered is not None:
        result.collection, lists = answered
        result.lists.update({q.member: list(lists.get(q.member, [])) for q in queries})
        return result
    if resolve:
        target = await call_store(deadline, "resolving the alias", store.resolve_alias, collection)
        result.collection = target or collection
    remaining = max(0.0, budget - (left - deadline.remaining()))
    await _one_by_one(store, result.collection, queries, filters, payload_fields, remaining, result)
    return result


def _inline(fn: Callable[[], T]) -> T | None:
    """``fn()`` on this thread: its result, or None when the store failed (logged)."""
    try:
        return fn()
    except STORE_FAILURES as exc:
        log.warning("store query of all members failed; querying them one by one", extra={"error": repr(exc)})
        return None


async def _within(fn: Callable[[], T], timeout: float) -> T | None:
    """``fn()`` in a worker thread: its result, or None when the store failed or it is not done in
    ``timeout`` (the thread then finishes on its own; its result is discarded)."""
    future = in_thread(fn)
    done, _ = await asyncio.wait({future}, timeout=timeout)
    if not done:
        future.cancel()
        return None
    raise_unless_store_failure(future.exception())
    return future.result() if future.exception() is None else None


async def _one_by_one(
    store: VectorStore,
    collection: str,
    queries: Sequence[MemberQuery],
    filters: Filters | None,
    payload_fields: Sequence[str] | None,
    timeout: float,
    result: MemberLists,
) -> None:
    """Each member in its own thread; failures and stragglers are recorded per member."""
    tasks = {in_thread(store.query, collection, [q], filters, payload_fields): q.member for q in queries}
    done, pending = await asyncio.wait(tasks, timeout=timeout) if timeout > 0 else (set(), set(tasks))
    for task in pending:
        task.cancel()
        result.timed_out.append(tasks[task])
    for task in done:
        raise_unless_store_failure(task.exception())
    for task in done:
        member = tasks[task]
        exc = task.exception()
        if exc is not None:
            log.warning("member query failed", extra={"member": member, "error": repr(exc)})
            result.failed[member] = f"{type(exc).__name__}: {exc}"
            continue
        result.lists[member] = list(task.result().get(member, []))


def raise_unless_store_failure(exc: BaseException | None) -> None:
    """Re-raise an exception that is not a store failure (a bug must not pass for a missing member)."""
    if exc is not None and not isinstance(exc, STORE_FAILURES):
        raise exc


__all__ = [
    "STORE_FAILURES",
    "Deadline",
    "MemberLists",
    "call_store",
    "in_thread",
    "query_members",
    "raise_unless_store_failure",
]
