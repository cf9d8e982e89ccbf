"""A request's deadline: any step it awaits ends in ``RequestTimeout`` once the deadline passes."""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable
from typing import TypeVar

import anyio

from app.errors import RequestTimeout

T = TypeVar("T")


async def within(deadline: float | None, step: Awaitable[T]) -> T:
    """Await ``step``; ``RequestTimeout`` once ``deadline`` (``time.monotonic()``, None: never) passes.

    A step already done when the deadline has passed still gives its result (nothing was waited for).
    """
    try:
        with anyio.fail_after(math.inf if deadline is None else max(deadline - time.monotonic(), 0.0)):
            return await step
    except TimeoutError:
        raise RequestTimeout("the request did not finish within its timeout") from None
