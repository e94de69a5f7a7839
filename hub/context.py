"""The action context: the only surface of the engine that actions see.

Built-in actions use nothing that an outside plugin lacks. The engine builds one
:class:`StepContext` per step attempt and passes it as the first argument of ``run``; a step
test, a field's options listing (:mod:`hub.services.actions`) and ``hub.testing`` build
theirs alike.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

if TYPE_CHECKING:
    import httpx

    from hub.cache import Cache
    from hub.settings import Settings


class Suspend(BaseException):
    """Raised by :meth:`StepContext.suspend_until`: the step becomes ``waiting``.

    It derives from BaseException so that an action's ``except Exception`` cannot swallow it.
    ``until`` is an epoch time in seconds, or None to wait for an outside event (a child run).
    """

    def __init__(self, until: float | None, state: dict[str, Any]) -> None:
        super().__init__(until)
        self.until = until
        self.state = state


class ContextServices(Protocol):
    """What the engine provides behind a context (not part of the plugin API)."""

    async def start_child_run(
        self, ctx: StepContext, flow_id: str, input: Any, wait: bool
    ) -> dict[str, Any]: ...


class RedactingLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger adapter that removes secret values from messages and arguments."""

    def __init__(self, logger: logging.Logger, redact: Any, extra: Mapping[str, Any]) -> None:
        super().__init__(logger, dict(extra))
        self._redact = redact

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        """Redact the message; arguments are formatted first so they are redacted too."""
        return self._redact(str(msg)), kwargs

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        """Format with the arguments, then redact the whole text."""
        if self.isEnabledFor(level):
            text = str(msg) % args if args else str(msg)
            msg, kwargs = self.process(text, kwargs)
            kwargs.setdefault("extra", self.extra)
            self.logger.log(level, msg, **kwargs)


def to_epoch(when: dt.datetime | float | int | str) -> float:
    """An epoch time in seconds from a datetime (naive means UTC), a number or ISO 8601."""
    if isinstance(when, int | float):
        return float(when)
    if isinstance(when, str):
        when = dt.datetime.fromisoformat(when.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


class StepContext:
    """Everything an action may use while it runs.

    Attributes: ``run_id``, ``flow_id``, ``workspace_id``, ``step_key`` (``id`` or
    ``id[i]``), ``step_id``, ``attempt`` (1 for the first try), ``idempotency_key`` (stable
    across attempts of one step item: pass it to services that support one), ``connection``
    (the decrypted settings of the step's connection, or None), ``input`` (the rendered input),
    ``http`` (a shared httpx client behind the SSRF guard), ``cache``, ``log`` (redacting),
    ``state`` (a dict persisted across suspensions of this step), ``settings``.
    """

    def __init__(
        self,
        *,
        run_id: str,
        flow_id: str,
        workspace_id: str,
        step_key: str,
        step_id: str,
        attempt: int,
        connection: dict[str, Any] | None,
        http: httpx.AsyncClient,
        cache: Cache,
        log: logging.Logger | logging.LoggerAdapter[logging.Logger],
        state: dict[str, Any],
        settings: Settings,
        services: ContextServices,
        depth: int = 0,
    ) -> None:
        self.run_id = run_id
        self.flow_id = flow_id
        self.workspace_id = workspace_id
        self.step_key = step_key
        self.step_id = step_id
        self.attempt = attempt
        self.idempotency_key = f"{run_id}:{step_key}"
        self.connection = connection
        self.http = http
        self.cache = cache
        self.log = log
        self.state = state
        self.settings = settings
        self.depth = depth
        self.input: Any = None
        self._services = services

    def suspend_until(self, when: dt.datetime | float | str | None) -> NoReturn:
        """Suspend the step durably until ``when`` (a datetime, epoch seconds or ISO 8601).

        The step becomes ``waiting`` and holds no worker; at ``when`` the action is called
        again with the same ``state`` (so it can tell that it has already waited). A time in
        the past returns nothing: the action is simply called again at once.
        """
        raise Suspend(None if when is None else to_epoch(when), self.state)

    async def start_flow(self, flow_id: str, input: Any = None, wait: bool = True) -> Any:
        """Start a child run of the published version of ``flow_id``.

        Without ``wait``, returns ``{"run_id": ...}`` at once. With ``wait``, the step waits
        durably (holding no worker) until the child finishes, then this returns the child's
        output, or raises :class:`hub.ActionError` if the child failed. Calling it again in a
        later attempt reuses the same child run.
        """
        result = await self._services.start_child_run(self, flow_id, input, wait)
        return result

    @staticmethod
    def now() -> float:
        """The current epoch time in seconds."""
        return time.time()
