"""Where renders run: on the event loop while they are cheap, in a thread when they are not.

Every render made on an event loop (a step's input, ``when`` and ``for_each``, a step test,
and the run's output: :mod:`hub.db.runstate.output`) goes through this module. It first
renders inline with a small slice of time (``HUB_RENDER_INLINE_SECONDS``): almost every
render ends well within it, at the cost of a plain call. A render still going when its
slice runs out raises :class:`~hub.expressions.sandbox.RenderMoved` at the budget's next
charge point; it is then run again from the start (renders are pure: the sandbox is
immutable) in a bounded pool of threads (``HUB_RENDER_THREADS``) with the whole budget, and
the event loop awaits it, free to answer requests and renew leases meanwhile.

The slice can only end at a charge point, and render threads compete with the loop for the
interpreter lock, so:

- a compiled value whose render in the pool took longer than a slice goes straight to the
  pool the next times, until one of them is quick again (the last
  :data:`MOVED_REMEMBERED` of them are kept);
- while renders run in the pool, the others get a tenth of the slice (:data:`BUSY_SLICE`):
  a burst of costly renders would otherwise each take a whole slice on the loop in turn;
- once the pool starts, the interpreter switches threads every millisecond
  (:data:`SWITCH_INTERVAL`, Python's default is 5 ms), so the loop waits less for the lock.

Python cannot stop a thread: a render in the pool ends by its budget (work, bytes and
``max_render_seconds``, checked at every charge point), which raises
:class:`~hub.expressions.sandbox.LimitExceeded`, reported as an
:class:`~hub.expressions.ExpressionError` that names the limit. When every thread is busy,
a moved render waits for one; renders that stay within their slice never wait.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hub.expressions.sandbox import RenderMoved
from hub.expressions.templates import Compiled

__all__ = [
    "BUSY_SLICE",
    "DEFAULT_INLINE_SECONDS",
    "DEFAULT_THREADS",
    "MOVED_REMEMBERED",
    "SWITCH_INTERVAL",
    "Renders",
    "default_renders",
]

#: The inline slice of a render on an event loop (``HUB_RENDER_INLINE_SECONDS``).
DEFAULT_INLINE_SECONDS = 0.01
#: The threads that run renders moved off an event loop (``HUB_RENDER_THREADS``).
DEFAULT_THREADS = 2
#: How many compiled values that moved are remembered (and sent straight to the pool).
MOVED_REMEMBERED = 1024
#: The share of the inline slice a render gets while others run in the pool (they compete
#: with the loop for the interpreter lock; a burst of costly renders would each take its
#: whole slice on the loop, one after another).
BUSY_SLICE = 0.1
#: The interpreter's thread switch interval once the pool starts (Python's default is 5 ms):
#: how long the event loop may wait for the interpreter lock while render threads run.
SWITCH_INTERVAL = 0.001


class Renders:
    """Renders compiled values for code on an event loop without ever stalling it long.

    ``inline_seconds`` is the slice a render gets on the loop; ``threads`` bounds the pool
    that runs the renders that outgrow it (made on first use, closed by :meth:`close`).
    """

    def __init__(
        self, inline_seconds: float = DEFAULT_INLINE_SECONDS, threads: int = DEFAULT_THREADS
    ) -> None:
        if inline_seconds < 0:
            raise ValueError("inline_seconds must be at least 0")
        if threads < 1:
            raise ValueError("threads must be at least 1")
        self.inline_seconds = inline_seconds
        self.threads = threads
        self.moved = 0  # renders that outgrew their slice (for tests and figures)
        # Compiled values that moved, by id (holding each keeps its id from being reused).
        self._costly: dict[int, Compiled] = {}
        self._in_pool = 0  # renders running or waiting in the pool
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                if sys.getswitchinterval() > SWITCH_INTERVAL:
                    sys.setswitchinterval(SWITCH_INTERVAL)
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="hub-render")
            return self._pool

    async def render(self, compiled: Compiled, context: Mapping[str, Any]) -> Any:
        """``compiled`` rendered against ``context``: inline within the slice, else in the
        pool with the whole budget. Raises what :meth:`Compiled.render` raises
        (:class:`~hub.expressions.ExpressionError`)."""
        if compiled.is_static:
            return compiled.render(context)
        key = id(compiled)
        if key not in self._costly:
            inline = self.inline_seconds * (BUSY_SLICE if self._in_pool else 1.0)
            try:
                return compiled.render(context, inline=inline)
            except RenderMoved:
                pass
            self.moved += 1
        took: list[float] = []
        try:
            return await self.in_thread(compiled, context, took)
        finally:
            # Remembered only while it really is costly: a cheap render that outran its
            # slice once (a pause of the process, a busy pool) goes back to the loop.
            if took and took[0] >= self.inline_seconds:
                if key not in self._costly and len(self._costly) >= MOVED_REMEMBERED:
                    self._costly.pop(next(iter(self._costly)))
                self._costly[key] = compiled
            else:
                self._costly.pop(key, None)

    async def in_thread(
        self, compiled: Compiled, context: Mapping[str, Any], took: list[float] | None = None
    ) -> Any:
        """``compiled`` rendered against ``context`` in the pool, with the whole budget;
        how long the render took (waiting for a thread aside) is appended to ``took``."""
        loop = asyncio.get_running_loop()
        self._in_pool += 1
        try:
            return await loop.run_in_executor(self._executor(), _timed, compiled, context, took)
        finally:
            self._in_pool -= 1

    def close(self) -> None:
        """Stop taking renders; threads still rendering end by their budget's deadline."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def _timed(compiled: Compiled, context: Mapping[str, Any], took: list[float] | None) -> Any:
    started = time.perf_counter()
    try:
        return compiled.render(context)
    finally:
        if took is not None:
            took.append(time.perf_counter() - started)


_DEFAULT: Renders | None = None


def default_renders() -> Renders:
    """The process's shared :class:`Renders` with the default slice and pool, for callers
    that have no hub's own (:func:`hub.testing.run_action`)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Renders()
    return _DEFAULT
