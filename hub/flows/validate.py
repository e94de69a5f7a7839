"""Validation of a flow document: :class:`FlowChecker` collects every issue, then builds the
:class:`~hub.flows.Flow`.

:func:`hub.flows.load_flow` is the entry point; the checks that know only the flow schema
(locations, JSON Schema errors as problems, partly templated input) are in
:mod:`hub.flows.checks`.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from hub.expressions import Compiled, ExpressionError, Expressions
from hub.flows import checks as flowcheck
from hub.flows import output_refs
from hub.flows.model import (
    Flow,
    FlowError,
    FlowIssue,
    RetryPolicy,
    StepSpec,
    TriggerSpec,
    parse_duration,
)

if TYPE_CHECKING:
    from hub.connectors import Registry

STEP_ID_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
ACTION_RE = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
ON_ERROR_KEYWORDS = frozenset({"fail", "continue"})
_EXPRESSION_FIELDS = ("input", "when", "for_each")
# The most steps in one flow. Each step's ancestors are a set, so a chain of n steps costs
# n**2 / 2 to check: 1,000 steps validate in about 0.3 s, 28,000 (what 1 MB can hold) would
# take minutes. A longer process is several flows joined by flow.call.
MAX_STEPS = 1_000


@dataclasses.dataclass
class _RawStep:
    """A step of the document with a valid, unique id, as written."""

    index: int
    id: str
    data: dict[str, Any]

    @property
    def location(self) -> str:
        return f"steps[{self.index}]"


class FlowChecker:
    """Validates one document, collecting every issue, and builds its :class:`Flow`."""

    def __init__(
        self,
        document: Mapping[str, Any],
        expressions: Expressions,
        registry: Registry | None,
        connections: Mapping[str, str] | None,
    ) -> None:
        self.document = document
        self.expressions = expressions
        self.registry = registry
        self.connections = connections
        self.issues: list[FlowIssue] = []
        self.schema_locations: set[str] = set()
        self.steps: dict[str, _RawStep] = {}
        self.handles: dict[str, list[str]] = {}
        self.needs: dict[str, tuple[str, ...]] = {}
        self.ancestors: dict[str, frozenset[str]] = {}
        self.compiled: dict[str, dict[str, Compiled]] = {}
        self.output: Compiled | None = None
        self._template_memo: dict[str, bool] = {}

    # Recording -----------------------------------------------------------------------

    def add(self, location: str, message: str) -> None:
        """Record an issue."""
        self.issues.append(FlowIssue(location, message))

    def reported(self, location: str) -> bool:
        """True when the schema already reported ``location`` or a field containing it."""
        return any(
            location == done or location.startswith((done + ".", done + "["))
            for done in self.schema_locations
        )

    # The checks, in order ------------------------------------------------------------

    def check_schema(self) -> None:
        """Validate the document against ``flow.schema.json``."""
        for location, message in flowcheck.schema_problems(
            flowcheck.flow_validator(), self.document
        ):
            self.schema_locations.add(location)
            self.add(location, message)

    def collect_steps(self) -> None:
        """Index the steps by id; report duplicates (the first one counts)."""
        raw_steps = self.document.get("steps")
        if not isinstance(raw_steps, list):
            return
        first_index: dict[str, int] = {}
        for index, data in enumerate(raw_steps):
            if not isinstance(data, dict):
                continue
            step_id = data.get("id")
            if not isinstance(step_id, str) or not STEP_ID_RE.match(step_id):
                continue
            if step_id in ON_ERROR_KEYWORDS:
                continue
            if step_id in first_index:
                self.add(
                    f"steps[{index}].id",
                    f"duplicate step id '{step_id}' (also steps[{first_index[step_id]}])",
                )
                continue
            first_index[step_id] = index
            self.steps[step_id] = _RawStep(index, step_id, data)

    def resolve_handlers(self) -> None:
        """Find the handler steps named by ``on_error``; refuse unknown targets.

        A handler's own ``on_error`` may be ``fail`` or ``continue`` only: handlers do not
        chain (the engine runs one handler for a failed step).
        """
        for step in self.steps.values():
            target = step.data.get("on_error", "fail")
            if not isinstance(target, str) or target in ON_ERROR_KEYWORDS:
                continue
            location = f"{step.location}.on_error"
            if target == step.id:
                self.add(location, "a step cannot be its own error handler")
            elif target not in self.steps:
                self.add(
                    location,
                    f"no step '{target}' in this flow (on_error is fail, continue or the id "
                    f"of a handler step){flowcheck.suggest(target, self.steps)}",
                )
            else:
                self.handles.setdefault(target, []).append(step.id)
        for handler in self.handles:
            step = self.steps[handler]
            target = step.data.get("on_error", "fail")
            if isinstance(target, str) and target not in ON_ERROR_KEYWORDS and target != handler:
                self.add(
                    f"{step.location}.on_error",
                    f"'{handler}' is an error handler: its own on_error may be fail or "
                    "continue, not another handler",
                )

    def resolve_needs(self) -> None:
        """Resolve ``needs`` (explicit, ``[]``, or absent: the previous non-handler step)."""
        previous: str | None = None
        for step in self.steps.values():
            raw = step.data.get("needs")
            if step.id in self.handles:
                if "needs" in step.data:
                    handled = ", ".join(f"'{s}'" for s in self.handles[step.id])
                    self.add(
                        f"{step.location}.needs",
                        f"'{step.id}' is an error handler (named by on_error of {handled}): it "
                        "runs when that step fails, so it takes no needs",
                    )
                self.needs[step.id] = ()
                continue
            if isinstance(raw, list):
                resolved: list[str] = []
                for position, name in enumerate(raw):
                    if not isinstance(name, str) or name in resolved:
                        continue
                    location = f"{step.location}.needs[{position}]"
                    if name not in self.steps:
                        hint = flowcheck.suggest(name, self.steps)
                        self.add(location, f"no step '{name}' in this flow{hint}")
                    elif name in self.handles:
                        self.add(
                            location,
                            f"'{name}' is an error handler: it runs only when the step it "
                            "handles fails, so no step can need it",
                        )
                    else:
                        resolved.append(name)
                self.needs[step.id] = tuple(resolved)
            else:
                self.needs[step.id] = (previous,) if previous else ()
            previous = step.id

    def find_cycles(self) -> None:
        """Report each cycle of ``needs`` once, naming its steps in order."""
        order = {step_id: step.index for step_id, step in self.steps.items()}
        for loop in flowcheck.find_cycles(self.needs, order):
            self.add("steps", f"needs form a cycle: {' -> '.join([*loop, loop[0]])}")

    def compute_ancestors(self) -> None:
        """Transitive ancestors; a handler's are those common to the steps it handles."""
        for step_id in self.needs:
            if step_id not in self.handles:
                self.ancestors[step_id] = flowcheck.transitive_needs(self.needs, step_id)
        for handler, handled in self.handles.items():
            # A handler may run after any of the steps it handles: it may read only what
            # precedes (or is) every one of them.
            sets = [self.ancestors.get(s, frozenset()) | {s} for s in handled]
            self.ancestors[handler] = frozenset.intersection(*sets)

    def compile(self, value: Any, location: str) -> Compiled | None:
        """Compile ``value``; record an :class:`ExpressionError` as an issue."""
        try:
            return self.expressions.compile(value, location)
        except ExpressionError as exc:
            self.add(exc.location or location, exc.message)
            return None

    def compile_expressions(self) -> None:
        """Compile every step's input, when and for_each, and the flow's output."""
        raw_steps = self.document.get("steps")
        if isinstance(raw_steps, list):
            for index, data in enumerate(raw_steps):
                if not isinstance(data, dict):
                    continue
                step_id = data.get("id")
                step = self.steps.get(step_id) if isinstance(step_id, str) else None
                owned = step is not None and step.index == index
                pieces: dict[str, Compiled] = {}
                for field in _EXPRESSION_FIELDS:
                    if field != "input" and data.get(field) is None:
                        continue
                    compiled = self.compile(data.get(field, {}), f"steps[{index}].{field}")
                    if compiled is not None:
                        pieces[field] = compiled
                if owned and isinstance(step_id, str):
                    self.compiled[step_id] = pieces
        if self.document.get("output") is not None:
            self.output = self.compile(self.document["output"], "output")

    def locate_ref(self, value: Any, base: str, ref: str) -> str:
        """The location of the string inside ``value`` that reads ``steps.<ref>``."""
        return self.locate(value, base, lambda c: c.step_refs is not None and ref in c.step_refs)

    def locate(self, value: Any, base: str, reads: Callable[[Compiled], bool]) -> str:
        """The location of the first string inside ``value`` whose compiled form ``reads``
        (``base`` when ``value`` is a string itself, or when none does)."""
        if isinstance(value, str):
            return base
        for location, text in flowcheck.iter_leaves(value, base):
            try:
                compiled = self.expressions.compile(text, location)
            except ExpressionError:
                continue
            if reads(compiled):
                return location
        return base

    def check_refs(self) -> None:
        """Expressions may read ``steps.X`` only where X is an ancestor (output: any step)."""
        for step_id, pieces in self.compiled.items():
            step = self.steps[step_id]
            allowed = self.ancestors.get(step_id, frozenset())
            for field, compiled in pieces.items():
                refs = compiled.step_refs
                if refs is None:
                    continue
                for ref in sorted(refs - allowed):
                    raw = step.data.get(field, {})
                    location = self.locate_ref(raw, f"{step.location}.{field}", ref)
                    self.add(location, self.ref_message(step_id, ref))
        if self.output is not None and self.output.step_refs is not None:
            for ref in sorted(self.output.step_refs):
                location = self.locate_ref(self.document.get("output"), "output", ref)
                if ref not in self.steps:
                    hint = flowcheck.suggest(ref, self.steps)
                    self.add(location, f"reads steps.{ref}, but there is no step '{ref}'{hint}")
                elif ref in self.handles:
                    self.add(
                        location,
                        f"reads steps.{ref}, an error handler: the output may read only steps "
                        "that run in the normal order",
                    )

    def ref_message(self, step_id: str, ref: str) -> str:
        """Why ``step_id`` may not read ``steps.<ref>``."""
        if ref not in self.steps:
            hint = flowcheck.suggest(ref, self.steps)
            return f"reads steps.{ref}, but there is no step '{ref}' in this flow{hint}"
        if ref == step_id:
            return f"reads steps.{ref}, its own output: a step reads only its ancestors"
        message = f"reads steps.{ref}, which is not an ancestor of this step"
        if ref in self.handles:
            return message + f" ('{ref}' is an error handler)"
        if step_id in self.handles:
            handled = ", ".join(f"'{s}'" for s in self.handles[step_id])
            return message + f" (a handler reads what precedes the step it handles: {handled})"
        return message + f"; add '{ref}' to its needs if it must run first"

    def check_output_refs(self) -> None:
        """Each ``steps.X.<path>`` read (by a step, or by the flow's output) reads X's
        ``output`` (the only key of ``steps.X`` at run time) and, with a registry, a field
        that X's action declares in its output schema (:mod:`hub.flows.output_refs`): a
        for_each step's output is the list of its items' outputs; keys computed at run time,
        and what an open schema (``{}``, ``additionalProperties``) holds, are not checked.
        Reads that :meth:`check_refs` refuses are not checked again."""
        for step_id, pieces in self.compiled.items():
            step = self.steps[step_id]
            allowed = self.ancestors.get(step_id, frozenset())
            for field, compiled in pieces.items():
                raw = step.data.get(field, {})
                self.check_output_paths(compiled, raw, f"{step.location}.{field}", allowed)
        if self.output is not None:
            readable = frozenset(s for s in self.steps if s not in self.handles)
            self.check_output_paths(self.output, self.document.get("output"), "output", readable)

    def check_output_paths(
        self, compiled: Compiled, raw: Any, base: str, readable: frozenset[str]
    ) -> None:
        """Check the output reads of one compiled field (``raw`` as written at ``base``)."""
        for ref, path in sorted(compiled.step_paths or (), key=repr):
            if ref not in readable or not path:
                continue
            problem = self.output_read_problem(ref, path)
            if problem is not None:
                wanted = functools.partial(output_refs.reads_path, (ref, path))
                self.add(self.locate(raw, base, wanted), problem)

    def output_read_problem(self, ref: str, path: tuple[str | int, ...]) -> str | None:
        """What is wrong with reading ``steps.<ref>`` + ``path``, or None."""
        if path[0] != "output":
            return output_refs.not_output(ref, path[0])
        step = self.steps[ref]
        action_name = step.data.get("action")
        if len(path) < 2 or self.registry is None or not isinstance(action_name, str):
            return None
        action = self.registry.action(action_name)
        if action is None:
            return None  # an unknown action is reported by check_actions
        return output_refs.undeclared_read(
            ref,
            action_name,
            action.output_schema,
            path[1:],
            for_each=step.data.get("for_each") is not None,
        )

    def check_trigger(self) -> TriggerSpec:
        """Check the trigger's type and config against the registry; return its spec."""
        raw = self.document.get("trigger")
        if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
            return TriggerSpec()
        config = raw.get("config")
        connection = raw.get("connection") if isinstance(raw.get("connection"), str) else None
        spec = TriggerSpec(
            raw["type"], dict(config) if isinstance(config, dict) else {}, connection
        )
        if self.registry is None:
            return spec
        self.check_trigger_connection(spec)
        trigger = self.registry.triggers.get(spec.type)
        if trigger is None:
            if spec.type != "manual":
                known = ", ".join(sorted({"manual", *self.registry.triggers}))
                hint = flowcheck.suggest(spec.type, self.registry.triggers)
                self.add(
                    "trigger.type", f"unknown trigger type '{spec.type}'{hint} (known: {known})"
                )
        elif trigger.config_schema and not self.reported("trigger.config"):
            validator = flowcheck.validator_for(trigger.config_schema)
            problems = flowcheck.schema_problems(validator, spec.config, "trigger.config")
            for location, message in problems:
                self.add(location, message)
            if not problems and trigger.check_config is not None:
                for field, message in trigger.check_config(spec.config):
                    self.add(f"trigger.config.{field}", message)
        return spec

    def check_trigger_connection(self, spec: TriggerSpec) -> None:
        """A trigger's connection exists and belongs to the trigger's connector."""
        connector = spec.type.split(".", 1)[0] if "." in spec.type else None
        if spec.connection is None or self.connections is None:
            return
        owner = self.connections.get(spec.connection)
        if owner is None:
            self.add("trigger.connection", f"no connection named '{spec.connection}'")
        elif connector is not None and owner != connector:
            self.add(
                "trigger.connection",
                f"connection '{spec.connection}' is for '{owner}', not '{connector}'",
            )

    def is_template(self, text: str) -> bool:
        """True when ``text`` holds a template (so its rendered value is unknown here)."""
        if text not in self._template_memo:
            try:
                static = self.expressions.compile(text, "").is_static
            except ExpressionError:
                static = False
            self._template_memo[text] = not static
        return self._template_memo[text]

    def check_actions(self) -> None:
        """Actions exist, connections fit them, and literal input meets the input schema."""
        for step in self.steps.values():
            action_name = step.data.get("action")
            if not isinstance(action_name, str) or not ACTION_RE.match(action_name):
                continue
            connector = action_name.split(".", 1)[0]
            self.check_connection(step, action_name, connector)
            if self.registry is None:
                continue
            action = self.registry.action(action_name)
            if action is None:
                hint = flowcheck.suggest(action_name, self.registry.actions)
                if connector not in self.registry.connectors:
                    why = f"no connector '{connector}' is installed"
                else:
                    why = f"connector '{connector}' has no action '{action_name.split('.')[1]}'"
                self.add(f"{step.location}.action", f"unknown action '{action_name}': {why}{hint}")
                continue
            if action.needs_connection and "connection" not in step.data:
                self.add(f"{step.location}.connection", f"action {action_name} needs a connection")
            compiled = self.compiled.get(step.id, {}).get("input")
            if not action.input_schema or compiled is None:
                continue
            validator = flowcheck.validator_for(action.input_schema)
            raw_input = step.data.get("input", {})
            base = f"{step.location}.input"
            if compiled.is_static:
                problems = flowcheck.schema_problems(validator, raw_input, base)
            else:
                problems = flowcheck.partial_problems(validator, raw_input, base, self.is_template)
            for location, message in problems:
                self.add(location, message)
            self.check_literal_fields(action.input_schema, raw_input, base)

    def check_literal_fields(self, schema: Any, raw_input: Any, base: str) -> None:
        """Fields marked ``"x-hub-literal": true`` (SQL text, ...) must not be templated.

        Rendering a value into SQL would defeat bound parameters; such fields take literal
        text, and the values go in a parameters field.
        """
        ref = schema.get("$ref") if isinstance(schema, dict) else None
        if isinstance(ref, str) and ref.startswith("#/$defs/"):  # a typed (msgspec) action
            schema = schema.get("$defs", {}).get(ref.rsplit("/", 1)[1], {})
        props = schema.get("properties") if isinstance(schema, dict) else None
        if not isinstance(props, dict) or not isinstance(raw_input, dict):
            return
        for name, sub in props.items():
            value = raw_input.get(name)
            literal = isinstance(sub, dict) and sub.get("x-hub-literal")
            if literal and isinstance(value, str) and self.is_template(value):
                self.add(
                    f"{base}.{name}",
                    "must be literal text, without expressions: pass values as parameters",
                )

    def check_connection(self, step: _RawStep, action_name: str, connector: str) -> None:
        """A named connection exists and belongs to the action's connector."""
        name = step.data.get("connection")
        if not isinstance(name, str) or self.connections is None:
            return
        location = f"{step.location}.connection"
        owner = self.connections.get(name)
        if owner is None:
            same = [n for n, c in self.connections.items() if c == connector]
            hint = flowcheck.suggest(name, same) or (
                f" (connections of '{connector}': {', '.join(sorted(same))})" if same else ""
            )
            self.add(location, f"no connection named '{name}'{hint}")
        elif owner != connector:
            self.add(
                location,
                f"connection '{name}' belongs to connector '{owner}', but action "
                f"'{action_name}' needs a connection of '{connector}'",
            )

    def duration(self, value: Any, location: str) -> float | None:
        """Parse a duration, recording an issue unless the schema already reported it."""
        try:
            return parse_duration(value, location)
        except FlowError as exc:
            if not self.reported(location):
                self.issues.extend(exc.issues)
            return None

    def build_retry(self, step: _RawStep) -> RetryPolicy:
        """The step's retry policy (defaults for what is absent or invalid)."""
        raw = step.data.get("retry")
        if not isinstance(raw, dict):
            return RetryPolicy()
        base = f"{step.location}.retry"
        attempts = raw.get("max_attempts", 1)
        backoff = raw.get("backoff", "exponential")
        policy = RetryPolicy(
            max_attempts=attempts if isinstance(attempts, int) and attempts >= 1 else 1,
            backoff="constant" if backoff == "constant" else "exponential",
            jitter=raw.get("jitter") is not False,
        )
        initial = self.duration(raw["initial"], f"{base}.initial") if "initial" in raw else None
        largest = self.duration(raw["max"], f"{base}.max") if "max" in raw else None
        policy = dataclasses.replace(
            policy,
            initial=policy.initial if initial is None else initial,
            max=policy.max if largest is None else largest,
        )
        if policy.initial > policy.max:
            if largest is not None:
                self.add(f"{base}.max", f"is less than retry.initial ({policy.initial:g}s)")
            elif initial is not None and "max" not in raw:
                self.add(
                    f"{base}.initial",
                    f"is more than retry.max ({policy.max:g}s, the default): set max too",
                )
        return policy

    def build_steps(self) -> dict[str, StepSpec]:
        """The step specs (meaningful once no issue was found)."""
        specs: dict[str, StepSpec] = {}
        for step in self.steps.values():
            data = step.data
            pieces = self.compiled.get(step.id, {})
            timeout = None
            if "timeout" in data:
                timeout = self.duration(data["timeout"], f"{step.location}.timeout")
                if timeout == 0:
                    self.add(f"{step.location}.timeout", "a timeout must be more than 0 seconds")
            concurrency = data.get("concurrency")
            if concurrency is not None and data.get("for_each") is None:
                self.add(
                    f"{step.location}.concurrency",
                    "concurrency caps the items of for_each, and this step has no for_each",
                )
            on_error = data.get("on_error", "fail")
            connection = data.get("connection")
            name = data.get("name")
            retry = self.build_retry(step)
            if "input" not in pieces:
                continue  # its input did not compile: reported
            specs[step.id] = StepSpec(
                id=step.id,
                action=str(data.get("action", "")),
                index=step.index,
                input=pieces["input"],
                connection=connection if isinstance(connection, str) else None,
                when=pieces.get("when"),
                for_each=pieces.get("for_each"),
                concurrency=concurrency if isinstance(concurrency, int) else None,
                needs=self.needs.get(step.id, ()),
                on_error=on_error if isinstance(on_error, str) else "fail",
                retry=retry,
                timeout=timeout,
                is_handler=step.id in self.handles,
                name=name if isinstance(name, str) else "",
                handles=tuple(self.handles.get(step.id, ())),
            )
        return specs

    def run(self, source: str) -> Flow:
        """Run every check; raise one :class:`FlowError` with all issues, or build the Flow.

        A flow of more than :data:`MAX_STEPS` steps is refused at once, unchecked.
        """
        raw_steps = self.document.get("steps")
        if isinstance(raw_steps, list) and len(raw_steps) > MAX_STEPS:
            message = (
                f"{len(raw_steps)} steps: a flow has at most {MAX_STEPS} "
                "(split a longer process into flows joined by flow.call)"
            )
            raise FlowError([FlowIssue("steps", message)], source)
        self.check_schema()
        self.collect_steps()
        self.resolve_handlers()
        self.resolve_needs()
        self.find_cycles()
        self.compute_ancestors()
        self.compile_expressions()
        self.check_refs()
        trigger = self.check_trigger()
        self.check_actions()
        self.check_output_refs()
        specs = self.build_steps()
        if self.issues:
            unique = list(dict.fromkeys(self.issues))
            unique.sort(key=lambda issue: flowcheck.location_key(issue.location))
            raise FlowError(unique, source)
        normal = [s for s in specs if not specs[s].is_handler]
        flow_id = str(self.document["id"])
        name = self.document.get("name")
        description = self.document.get("description")
        document = self.document if isinstance(self.document, dict) else dict(self.document)
        return Flow(
            id=flow_id,
            name=name if isinstance(name, str) and name else flow_id,
            document=document,
            trigger=trigger,
            steps=specs,
            output=self.output,
            successors={s: tuple(n for n in normal if s in specs[n].needs) for s in specs},
            ancestors={s: self.ancestors.get(s, frozenset()) for s in specs},
            roots=tuple(s for s in normal if not specs[s].needs),
            description=description if isinstance(description, str) else "",
        )
