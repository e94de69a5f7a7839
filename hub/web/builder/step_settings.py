"""The step panel's settings: ``name``, ``connection``, ``needs``, ``when``, ``for_each``,
``concurrency``, ``retry``, ``timeout`` and ``on_error``, as their fields show them
(:func:`setting_text`, the choices of ``needs`` and ``on_error``) and as a posted panel is
read back into the step (:func:`read_settings`).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from typing import Any

from hub.flows.validate import ON_ERROR_KEYWORDS
from hub.web.builder.commands import wiring
from hub.web.builder.state import step_ids
from hub.web.forms import MISSING

#: The settings the panel edits, in the order it shows them.
SETTINGS = ("needs", "when", "for_each", "concurrency", "retry", "timeout", "on_error")
NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")
INTEGER = re.compile(r"^\s*\+?\d{1,9}\s*$")
MAX_TEXT = 100_000  # characters of one setting's text


def setting_text(value: Any) -> str:
    """A setting's value as text: strings as they are, numbers and booleans as JSON."""
    if value is MISSING or value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def needs_choices(
    document: Mapping[str, Any], step: Mapping[str, Any]
) -> list[tuple[str, str, bool]]:
    """The steps this one may need (the others, error handlers left out), plus any name its
    ``needs`` holds that is not one of them (kept until unticked)."""
    step_id = step.get("id")
    handlers = wiring(document).handles
    current: list[Any] = step["needs"] if isinstance(step.get("needs"), list) else []
    out = []
    for other in document.get("steps") or []:
        if not isinstance(other, dict) or not isinstance(other.get("id"), str):
            continue
        other_id = other["id"]
        if other_id == step_id or other_id in handlers:
            continue
        name = other.get("name") if isinstance(other.get("name"), str) else ""
        label = f"{name} ({other_id})" if name else other_id
        out.append((other_id, label, other_id in current))
    known = {choice[0] for choice in out}
    for name in current:
        if isinstance(name, str) and name not in known:
            out.append((name, f"{name} (not a step this one can wait for)", True))
    return out


def on_error_choices(document: Mapping[str, Any], step: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What ``on_error`` may be: fail (the default: no key), continue, or a step that can
    handle the error (another step that is not itself handling with a handler)."""
    step_id = step.get("id")
    current = step.get("on_error")
    out = [("", "Fail the run (default)")]
    if current == "fail":
        out.append(("fail", "Fail the run (written out)"))
    out.append(("continue", "Continue: the step's output is its error"))
    for other in document.get("steps") or []:
        if not isinstance(other, dict) or not isinstance(other.get("id"), str):
            continue
        if other["id"] == step_id:
            continue
        own = other.get("on_error")
        if isinstance(own, str) and own not in ON_ERROR_KEYWORDS:
            continue  # a step that hands its own errors to a handler cannot be one
        name = other.get("name") if isinstance(other.get("name"), str) else ""
        label = f"Run {name} ({other['id']})" if name else f"Run {other['id']}"
        out.append((other["id"], label))
    if isinstance(current, str) and current not in {value for value, _ in out}:
        out.append((current, f"{current} (not a step of this flow)"))
    return out


def _last(form: Mapping[str, list[str]], key: str) -> str | None:
    values = form.get(key)
    return values[-1][:MAX_TEXT] if values else None


def duration_value(text: str) -> Any:
    """A duration as typed: a number of seconds when it is one, else the text itself."""
    if NUMBER.match(text):
        number = float(text)
        return int(number) if INTEGER.match(text) else number
    return text


def read_settings(
    form: Mapping[str, list[str]], old: Mapping[str, Any], document: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The step with the panel's heading and settings fields read back (a field not in the
    form leaves its key alone; an empty one removes it), and what could not be read, by
    setting."""
    step = copy.deepcopy(dict(old))
    errors: dict[str, list[str]] = {}

    def put(key: str, value: Any) -> None:
        if value is MISSING:
            step.pop(key, None)
        else:
            step[key] = value

    name = _last(form, "step.name")
    if name is not None:
        put("name", name if name != "" else MISSING)
    connection = _last(form, "step.connection")
    if connection is not None:
        put("connection", connection if connection != "" else MISSING)
    mode = _last(form, "step.needs_mode")
    if mode is not None:
        if mode == "default":
            put("needs", MISSING)
        elif mode == "trigger":
            put("needs", [])
        else:
            ticked = [n for n in dict.fromkeys(form.get("step.needs") or []) if n]
            before: list[Any] = old["needs"] if isinstance(old.get("needs"), list) else []
            kept = [n for n in before if n in ticked]
            order = step_ids(document)
            added = sorted(
                (n for n in ticked if n not in kept),
                key=lambda n: order.index(n) if n in order else len(order),
            )
            put("needs", kept + added)
    when = _last(form, "step.when")
    if when is not None:
        text = when.replace("\r\n", "\n")
        put("when", MISSING if text == "" else {"true": True, "false": False}.get(text, text))
    for_each = _last(form, "step.for_each")
    if for_each is not None:
        text = for_each.replace("\r\n", "\n")
        value: Any = text if text != "" else MISSING
        if text.lstrip().startswith("["):
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
            if isinstance(parsed, list):
                value = parsed
        put("for_each", value)
    concurrency = _last(form, "step.concurrency")
    if concurrency is not None:
        if concurrency.strip() == "":
            put("concurrency", MISSING)
        elif INTEGER.match(concurrency):
            put("concurrency", int(concurrency))
        else:
            errors.setdefault("concurrency", []).append(
                f"{concurrency[:40]!r} is not a whole number (like 4)"
            )
    if _last(form, "step.retry") is not None:
        retry = dict(old["retry"]) if isinstance(old.get("retry"), dict) else {}
        attempts = _last(form, "step.retry.max_attempts") or ""
        if attempts.strip() == "":
            retry.pop("max_attempts", None)
        elif INTEGER.match(attempts):
            retry["max_attempts"] = int(attempts)
        else:
            errors.setdefault("retry", []).append(
                f"max attempts: {attempts[:40]!r} is not a whole number (like 3)"
            )
        backoff = _last(form, "step.retry.backoff") or ""
        if backoff:
            retry["backoff"] = backoff
        else:
            retry.pop("backoff", None)
        for key in ("initial", "max"):
            text = _last(form, f"step.retry.{key}") or ""
            if text == "":
                retry.pop(key, None)
            else:
                retry[key] = duration_value(text)
        put("retry", retry if retry else MISSING)
    timeout = _last(form, "step.timeout")
    if timeout is not None:
        put("timeout", MISSING if timeout == "" else duration_value(timeout))
    on_error = _last(form, "step.on_error")
    if on_error is not None:
        put("on_error", on_error if on_error else MISSING)
    return step, errors
