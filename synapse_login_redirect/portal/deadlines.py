"""Calls to other homeservers that give up after a deadline."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

from synapse.module_api import make_deferred_yieldable, run_in_background
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime

T = TypeVar("T")


async def call_with_deadline(
    clock: IReactorTime, seconds: float, f: Callable[..., Awaitable[T]], *args: Any
) -> T:
    """Await ``f(*args)``; cancel it after ``seconds`` of ``clock`` and raise
    defer.TimeoutError."""
    called = run_in_background(f, *args)
    called.addTimeout(seconds, clock, onTimeoutCancel=_timed_out)
    return await make_deferred_yieldable(called)


def _timed_out(result: object, timeout: float) -> NoReturn:
    # Whatever the cancelled call raised (Synapse's HTTP client can turn the
    # cancellation into another error), the cause was the deadline.
    raise defer.TimeoutError(timeout, "no answer in time")
