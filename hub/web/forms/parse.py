"""Reading a submitted form back into a value, adding and removing rows, and validation
errors by field (see :mod:`hub.web.forms`)."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from collections.abc import Iterable
from typing import Any

from hub.schemas import validator_for
from hub.security.secrets import Redactor, secret_values
from hub.web.forms.render import NO_HOOKS, FormHooks
from hub.web.forms.schema import (
    CHOICE,
    CLEAR,
    INTEGER_TEXT,
    KEY,
    KV,
    MAX_MESSAGE,
    MAX_NUMBER_TEXT,
    MISSING,
    NUMBER_TEXT,
    OP_FIELD,
    ROOT,
    ROW,
    ROW_TEXT,
    SET,
    VALUE,
    Choice,
    FormLimits,
    FormTooLarge,
    FormValues,
    Path,
    Raw,
    Schema,
    alternatives,
    checkbox_set,
    child_name,
    enum_choices,
    humanize,
    is_secret,
    kind_of,
    option_texts,
    resolve,
)

# -- parsing --------------------------------------------------------------------------------


@dataclasses.dataclass
class Submission:
    """A submitted form read back: the value (with :class:`Raw` text where a field could
    not be read, and :class:`Choice` where a choice was made), the errors of reading it by
    path, the secrets left empty (``kept``) or to remove (``cleared``), every array's and
    row's path by name (for ``_form_op``), and the operation asked for."""

    tree: Any
    errors: dict[Path, list[str]]
    kept: set[Path]
    cleared: set[Path]
    paths: dict[str, Path]
    op: str
    secret_paths: set[Path]

    @property
    def value(self) -> Any:
        """The JSON value (:class:`Raw` leaves dropped; only meaningful without errors)."""
        return plain(self.tree)

    def secret_texts(self) -> set[str]:
        """The submitted secret values (to redact from any message)."""
        found: set[str] = set()
        for path in self.secret_paths:
            value = value_at(self.value, path)
            if value is not MISSING:
                found |= secret_values(value)
        return found


def plain(tree: Any) -> Any:
    """A parsed tree as JSON: :class:`Choice` unwrapped, :class:`Raw` and missing dropped."""
    if isinstance(tree, Choice):
        return plain(tree.value)
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            item = plain(v)
            if item is not MISSING:
                out[k] = item
        return out
    if isinstance(tree, list):
        return [x for x in (plain(v) for v in tree) if x is not MISSING]
    if isinstance(tree, Raw):
        return MISSING
    return tree


def form_data(pairs: Iterable[tuple[str, str]], limits: FormLimits | None = None) -> FormValues:
    """Submitted ``(name, value)`` pairs as name -> values (in order); more than the bound's
    fields (times four: markers and checkboxes) is :class:`FormTooLarge`."""
    bound = (limits or FormLimits()).max_fields * 4
    out: dict[str, list[str]] = {}
    for count, (name, value) in enumerate(pairs, 1):
        if count > bound:
            raise FormTooLarge(
                f"the form sent more than {bound} values",
                [{"location": "form", "message": "too many values"}],
            )
        out.setdefault(str(name), []).append(str(value))
    return out


class _Reader:
    """Reads a submission, led by the schema."""

    def __init__(self, root: Any, form: FormValues, limits: FormLimits, hooks: FormHooks) -> None:
        self.root = root
        self.form = form
        self.limits = limits
        self.hooks = hooks
        self.errors: dict[Path, list[str]] = {}
        self.kept: set[Path] = set()
        self.cleared: set[Path] = set()
        self.paths: dict[str, Path] = {}
        self.secret_paths: set[Path] = set()
        self.rows = 0

    def error(self, path: Path, message: str) -> None:
        self.errors.setdefault(path, []).append(message)

    def first(self, name: str) -> str | None:
        values = self.form.get(name)
        return values[-1] if values else None

    def read(
        self, schema: Any, path: Path, name: str, label: str, required: bool, depth: int
    ) -> Any:
        if depth > self.limits.max_depth:
            raise FormTooLarge(
                f"the schema nests deeper than {self.limits.max_depth} levels",
                [{"location": name, "message": "too deep"}],
            )
        s = resolve(schema, self.root)
        label = str(s.get("title") or label)
        hooked = self.hooks.parse(s, name, self.form)
        if hooked is not MISSING:
            return hooked
        kind = kind_of(s, self.root)
        if is_secret(s) and kind not in ("enum", "const"):
            return self.secret(s, kind, path, name, label)
        reader = getattr(self, f"read_{kind}")
        result: Any = reader(s, path, name, label, required, depth)
        return result

    def secret(self, s: dict[str, Any], kind: str, path: Path, name: str, label: str) -> Any:
        self.secret_paths.add(path)
        text = self.first(name)
        if text is None:
            return MISSING
        if text == "":
            if self.first(f"{name}.{CLEAR}"):
                self.cleared.add(path)
            else:
                self.kept.add(path)
            return MISSING
        if kind == "string":
            return text
        if kind in ("integer", "number"):
            # never quote a secret back in an error
            parsed = _number(text, kind == "integer")
            if parsed is None:
                self.error(path, f"{label}: enter {_number_words(kind)}")
                return MISSING
            return parsed
        if kind == "boolean":
            return text.strip().lower() in ("true", "1", "yes", "on")
        try:
            return json.loads(text)
        except ValueError:
            self.error(path, f"{label}: enter JSON (the text is not valid JSON)")
            return MISSING

    def read_const(self, s: Schema, path: Path, name: str, label: str, req: bool, d: int) -> Any:
        return MISSING if self.first(name) is None else copy.deepcopy(s["const"])

    def read_json(self, s: Schema, path: Path, name: str, label: str, req: bool, d: int) -> Any:
        text = self.first(name)
        if text is None or (not text.strip() and not req):
            return MISSING
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            self.error(path, f"{label}: enter JSON ({exc.msg} at line {exc.lineno})")
            return Raw(text)

    def read_string(self, s: Schema, path: Path, name: str, label: str, req: bool, d: int) -> Any:
        text = self.first(name)
        if text is None:
            return MISSING
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        return MISSING if text == "" and not req else text

    def read_integer(self, s: Schema, path: Path, name: str, label: str, req: bool, d: int) -> Any:
        return self.number(path, name, label, req, integer=True)

    def read_number(self, s: Schema, path: Path, name: str, label: str, req: bool, d: int) -> Any:
        return self.number(path, name, label, req, integer=False)

    def number(self, path: Path, name: str, label: str, req: bool, *, integer: bool) -> Any:
        text = self.first(name)
        if text is None:
            return MISSING
        if not text.strip():
            if req:
                self.error(path, f"{label}: enter {_number_words('integer' if integer else '')}")
                return Raw(text)
            return MISSING
        parsed = _number(text, integer)
        if parsed is None:
            shown = text if len(text) <= 40 else text[:40] + "…"
            words = _number_words("integer" if integer else "number")
            self.error(path, f"{label}: {shown!r} is not {words}")
            return Raw(text)
        return parsed

    def read_boolean(self, s: Schema, path: Path, name: str, label: str, req: bool, d: int) -> Any:
        values = self.form.get(name)
        return MISSING if values is None else "true" in values

    def read_enum(self, s: Schema, path: Path, name: str, label: str, req: bool, d: int) -> Any:
        text = self.first(name)
        if text is None or text == "":
            return MISSING
        return self.enum_value(s, path, label, text)

    def enum_value(self, s: Schema, path: Path, label: str, text: str) -> Any:
        choices = enum_choices(s, self.root) or []
        texts = option_texts([v for v, _ in choices])
        for (choice, _title), candidate in zip(choices, texts, strict=True):
            if candidate == text:
                return copy.deepcopy(choice)
        self.error(path, f"{label}: choose one of the options")
        return Raw(text)

    def read_array(self, s: Schema, path: Path, name: str, label: str, req: bool, d: int) -> Any:
        self.paths[name] = path
        items_schema = resolve(s.get("items"), self.root)
        if checkbox_set(s, self.root) is not None:
            if self.first(f"{name}.{SET}") is None:
                return MISSING
            texts = self.form.get(name, [])
            self.count_rows(len(texts), name)
            values = [self.enum_value(items_schema, path, label, t) for t in texts]
            return values if values or req else MISSING
        markers = self.form.get(f"{name}.{ROW}") or []
        if not markers and self.first(f"{name}.{SET}") is None:
            return MISSING
        self.count_rows(len(markers), name)
        out: list[Any] = []
        seen: set[str] = set()
        for marker in markers:
            if not ROW_TEXT.match(marker) or marker in seen:
                continue
            seen.add(marker)
            row_name, row_path = f"{name}.{marker}", (*path, len(out))
            self.paths[row_name] = row_path
            item = self.read(s.get("items"), row_path, row_name, f"{label} {len(out) + 1}", True,
                             d + 1)  # fmt: skip
            out.append(item)
        return out if out or req else MISSING

    def count_rows(self, count: int, name: str) -> None:
        self.rows += count
        if self.rows > self.limits.max_fields:
            raise FormTooLarge(
                f"the form sent more than {self.limits.max_fields} rows",
                [{"location": name, "message": "too many rows"}],
            )

    def read_object(self, s: Schema, path: Path, name: str, label: str, req: bool, d: int) -> Any:
        self.paths[name] = path
        required = set(s.get("required") or [])
        props = s.get("properties") or {}
        # A const property is a hidden input always sent: it fills nothing by itself.
        consts = {
            child_name(name, key)
            for key, sub in props.items()
            if kind_of(resolve(sub, self.root), self.root) == "const"
        }
        if not req and not self.filled(name, consts):
            return MISSING  # an optional object left empty
        out: dict[str, Any] = {}
        for key, sub in props.items():
            item = self.read(sub, (*path, key), child_name(name, key), humanize(key),
                             key in required, d + 1)  # fmt: skip
            if item is not MISSING:
                out[key] = item
        extra = s.get("additionalProperties")
        if isinstance(extra, dict):
            markers = self.form.get(f"{name}.{KV}") or []
            self.count_rows(len(markers), name)
            for marker in dict.fromkeys(markers):
                if not ROW_TEXT.match(marker):
                    continue
                key = self.first(f"{name}.{KEY}.{marker}")
                value_name = f"{name}.{VALUE}.{marker}"
                if key is None or (key == "" and not self.filled(value_name)):
                    continue  # an empty row
                item = self.read(extra, (*path, key), value_name, f"Value for {key!r}", True,
                                 d + 1)  # fmt: skip
                self.paths[value_name] = (*path, key)
                if key in props or key in out:
                    self.error(path, f"{label}: the key {key!r} appears twice")
                    continue
                out[key] = item
        return out if out or req else MISSING

    def filled(self, name: str, ignore: set[str] | frozenset[str] = frozenset()) -> bool:
        """Whether anything was typed, ticked or chosen in the field ``name`` or under it
        (the fields named in ``ignore`` left aside)."""
        prefix = name + "."
        return any(
            (k == name or k.startswith(prefix)) and any(v != "" for v in values)
            for k, values in self.form.items()
            if not k.endswith((ROW, KV, SET, CHOICE)) and k not in ignore
        )

    def read_choice(self, s: Schema, path: Path, name: str, label: str, req: bool, d: int) -> Any:
        alts = alternatives(s) or []
        marker = self.first(f"{name}.{CHOICE}")
        if marker is None:
            return MISSING
        index = int(marker) if ROW_TEXT.match(marker) and int(marker) < len(alts) else 0
        base = {k: v for k, v in s.items() if k not in ("oneOf", "anyOf", "title", "description")}
        alt_schema = {**base, **resolve(alts[index], self.root)}
        # Kept even when empty: a re-rendered form shows the alternative chosen.
        return Choice(index, self.read(alt_schema, path, name, label, req, d + 1))


def _number(text: str, integer: bool) -> int | float | None:
    """A number from text, or None (too long, not a number, not finite)."""
    text = text.strip()
    if len(text) > MAX_NUMBER_TEXT:
        return None
    if INTEGER_TEXT.match(text):
        return int(text)
    if integer or not NUMBER_TEXT.match(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def _number_words(kind: str) -> str:
    return "a whole number (like 42)" if kind == "integer" else "a number (like 4.5)"


def parse_form(
    schema: Any,
    pairs: Iterable[tuple[str, str]],
    *,
    limits: FormLimits | None = None,
    hooks: FormHooks = NO_HOOKS,
) -> Submission:
    """Read a submitted form (its ``(name, value)`` pairs, as a browser sends them) back
    into a value, led by the schema."""
    bounds = limits or FormLimits()
    form = form_data(pairs, bounds)
    reader = _Reader(schema, form, bounds, hooks)
    tree = reader.read(schema, (), ROOT, "Values", True, 0)
    op = (form.get(OP_FIELD) or [""])[-1]
    return Submission(
        tree=tree,
        errors=reader.errors,
        kept=reader.kept,
        cleared=reader.cleared,
        paths=reader.paths,
        op=op,
        secret_paths=reader.secret_paths,
    )


# -- operations: adding and removing rows ---------------------------------------------------


def apply_op(schema: Any, submission: Submission) -> tuple[Any, Path | None]:
    """The tree after the submission's ``_form_op`` (``add:``, ``remove:``, ``refresh``),
    and the path to focus on the re-rendered form."""
    op, _, target = submission.op.partition(":")
    tree = submission.tree
    path = submission.paths.get(target)
    if path is None or op not in ("add", "remove"):
        return tree, None
    if op == "remove":
        parent_path, last = path[:-1], path[-1]
        parent = value_at(tree, parent_path)
        if isinstance(parent, list) and isinstance(last, int) and last < len(parent):
            del parent[last]
        elif isinstance(parent, dict) and isinstance(last, str):
            parent.pop(last, None)
        return tree, parent_path
    field_schema = _schema_at(schema, path)
    holder = value_at(tree, path)
    entries = isinstance(field_schema.get("additionalProperties"), dict)
    if holder is None or holder is MISSING:
        is_array = kind_of(field_schema, schema) == "array"
        if not is_array and not entries:  # an optional object not set: set it
            return _set(tree, path, blank(field_schema, schema)), path
        holder = [] if is_array else {}
        tree = _set(tree, path, holder)
    if isinstance(holder, list):
        holder.append(blank(field_schema.get("items"), schema))
        return tree, (*path, len(holder) - 1)
    if isinstance(holder, dict) and entries and "" not in holder:
        holder[""] = blank(field_schema["additionalProperties"], schema)
    return tree, (*path, "", KEY)


def value_at(tree: Any, path: Path) -> Any:
    """The value at ``path`` in a value or a parsed tree (choices unwrapped), or
    :data:`MISSING`."""
    for part in path:
        if isinstance(tree, Choice):
            tree = tree.value
        if isinstance(tree, dict) and isinstance(part, str):
            tree = tree.get(part, MISSING)
        elif isinstance(tree, list) and isinstance(part, int) and part < len(tree):
            tree = tree[part]
        else:
            return MISSING
    return tree.value if isinstance(tree, Choice) else tree


def _set(tree: Any, path: Path, value: Any) -> Any:
    if not path:
        return value
    parent = value_at(tree, path[:-1])
    if isinstance(parent, dict) and isinstance(path[-1], str):
        parent[path[-1]] = value
    return tree


def _schema_at(root: Any, path: Path) -> dict[str, Any]:
    """The resolved schema of the field at ``path`` (choices: the first alternative that
    has the part)."""
    s = resolve(root, root)
    for part in path:
        alts = alternatives(s)
        if alts and enum_choices(s, root) is None:
            for alt in alts:
                r = resolve(alt, root)
                if (isinstance(part, str) and part in (r.get("properties") or {})) or (
                    isinstance(part, int) and "items" in r
                ):
                    s = r
                    break
        if isinstance(part, int):
            s = resolve(s.get("items"), root)
        else:
            props = s.get("properties") or {}
            s = resolve(props[part] if part in props else s.get("additionalProperties"), root)
    return s


def blank(schema: Any, root: Any) -> Any:
    """The value of a new row: its default, else an empty value of its kind."""
    s = resolve(schema, root)
    if "default" in s:
        return copy.deepcopy(s["default"])
    kind = kind_of(s, root)
    return {"string": "", "boolean": False, "object": {}, "array": []}.get(kind, Raw(""))


# -- validation -----------------------------------------------------------------------------


def validation_errors(
    schema: Any, value: Any, secrets: Iterable[str] = ()
) -> dict[Path, list[str]]:
    """Every way ``value`` breaks ``schema``, by the path of the field it belongs to (a
    missing required property: the property's own path); messages never quote a secret."""
    redactor = Redactor(secrets)
    out: dict[Path, list[str]] = {}
    for error in validator_for(schema).iter_errors(value):
        path: Path = tuple(error.absolute_path)
        message = error.message
        if error.validator == "required" and isinstance(error.instance, dict):
            missing = [
                p
                for p in (error.validator_value or [])
                if p not in error.instance and repr(p) in error.message
            ]
            if missing:
                path = (*path, missing[0])
                message = "required: fill this in"
        message = redactor.text(message)
        if len(message) > MAX_MESSAGE:
            message = message[:MAX_MESSAGE] + "…"
        out.setdefault(path, []).append(message)
    return out
