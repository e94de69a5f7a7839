"""The flow builder's drafts: the document a person is editing, kept on the server.

A draft belongs to one person and one flow (:class:`~hub.db.models.FlowDraft`). Every change
is an RFC 6902 JSON Patch (:meth:`DraftsService.edit_draft`); its inverse is computed and
kept, so that undo and redo walk one stack of exact edits and give back the document byte
for byte. The YAML text is edited with the document (comments and key order kept), or
replaced when the person types in the YAML tab (:meth:`DraftsService.replace_draft_text`).

Saving makes a version with the version the draft started from (``base_version``): when
someone saved another version since, the save is refused with the diff
(:func:`hub.services.flows.check_base_version`), never a silent overwrite. The try-it data
(pinned step outputs, the trigger's sample) live in the draft, never in the flow document
or its export.

A draft may be invalid (that is what editing looks like); only the save validates.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from typing import Any

import anyio
import jsonpatch
import jsonpointer

from hub.db import drafts as draft_store
from hub.db import flows as flow_store
from hub.db.flows import SavedVersion, checksum
from hub.flows.bounds import BoundExceeded, DocumentLimits, measure_value
from hub.flows.checks import TextError, read_yaml
from hub.flows.yaml_text import apply_patch_to_yaml, dump_yaml
from hub.services.errors import Conflict, Invalid, NotFound
from hub.services.flows import FlowsService, document_limiter

#: The most edits a draft remembers for undo (the oldest are forgotten first).
MAX_UNDO = 200
#: The most operations one edit may hold.
MAX_OPS = 1_000
#: Edits with the same label this close together are one undo entry (a field typed in
#: saves a moment after each pause: undo takes back the burst, not a keystroke).
COALESCE_SECONDS = 2.0


@dataclasses.dataclass
class Draft:
    """A person's draft of a flow, as the builder shows it."""

    flow_id: str
    document: dict[str, Any]
    source: str
    source_document: Any
    base_version: int | None
    revision: int
    undo_labels: list[str]
    redo_labels: list[str]
    pins: dict[str, Any]
    sample: Any
    saved_checksum: str

    @property
    def dirty(self) -> bool:
        """True when the document differs from the one last saved (or was never saved)."""
        return checksum(self.document) != self.saved_checksum

    @property
    def text_is_current(self) -> bool:
        """True when ``source`` reads as the document now (else
        :meth:`DraftsService.draft_text` brings it up to date)."""
        return bool(self.source_document == self.document)

    @property
    def is_new(self) -> bool:
        """True for a flow that has no saved version yet."""
        return self.base_version is None

    @classmethod
    def of_row(cls, row: dict[str, Any]) -> Draft:
        """The draft of a ``flow_drafts`` row."""
        return cls(
            flow_id=row["flow_id"],
            document=row["document"],
            source=row["source"] or "",
            source_document=row["source_document"],
            base_version=row["base_version"],
            revision=row["revision"],
            undo_labels=[str(entry.get("label", "")) for entry in row["undo"] or []],
            redo_labels=[str(entry.get("label", "")) for entry in row["redo"] or []],
            pins=dict(row["pins"] or {}),
            sample=row["sample"],
            saved_checksum=row["saved_checksum"] or "",
        )


def new_flow_document(flow_id: str, name: str = "", trigger_type: str = "manual") -> dict[str, Any]:
    """The document a new flow starts from in the builder: an id, a name, a trigger and
    no steps yet (not valid until a step is added)."""
    document: dict[str, Any] = {"id": flow_id, "name": name or flow_id}
    document["trigger"] = {"type": trigger_type}
    document["steps"] = []
    return document


def _refuse_id_change(ops: list[dict[str, Any]]) -> None:
    """A draft is the draft of one flow: no operation may change its id."""
    if len(ops) > MAX_OPS:
        raise Invalid(
            f"an edit holds at most {MAX_OPS} operations ({len(ops)} given)",
            [{"location": "ops", "message": f"at most {MAX_OPS} operations"}],
        )
    for index, op in enumerate(ops):
        if not isinstance(op, dict):
            raise Invalid(
                "the edit is not a JSON Patch: each operation is an object",
                [{"location": f"ops[{index}]", "message": "must be an object"}],
            )
        if op.get("path") in ("", "/id") or op.get("from") in ("", "/id"):
            raise Invalid(
                "the flow's id cannot change in the builder (it names the draft and the "
                "flow's runs): export the flow and import it under another id",
                [{"location": f"ops[{index}]", "message": "the id is fixed"}],
            )


def _inverse_of_op(document: Any, op: dict[str, Any]) -> list[dict[str, Any]]:
    """The operations that undo ``op`` on ``document`` (read before ``op`` applies)."""
    kind, path = op.get("op"), op.get("path")
    if not isinstance(path, str):
        raise jsonpatch.InvalidJsonPatch(f"operation without a path: {op}")
    if kind == "add":
        parent, last = path.rsplit("/", 1) if "/" in path else ("", path)
        target = jsonpointer.resolve_pointer(document, parent)
        if isinstance(target, list):
            index = len(target) if last == "-" else int(last)
            return [{"op": "remove", "path": f"{parent}/{index}"}]
        key = jsonpointer.JsonPointer(path).parts[-1]
        if isinstance(target, dict) and key in target:
            return [{"op": "replace", "path": path, "value": copy.deepcopy(target[key])}]
        return [{"op": "remove", "path": path}]
    if kind in ("remove", "replace"):
        old = copy.deepcopy(jsonpointer.resolve_pointer(document, path))
        return [{"op": "add" if kind == "remove" else "replace", "path": path, "value": old}]
    if kind == "test":
        return []
    raise jsonpatch.InvalidJsonPatch(f"unknown operation {kind!r}")


def _expanded(document: Any, op: dict[str, Any]) -> list[dict[str, Any]]:
    """``op`` as the operations whose inverses are exact: a move is the remove then the add
    it stands for, a copy the add of the value copied (RFC 6902, 4.4 and 4.5)."""
    kind = op.get("op")
    if kind not in ("move", "copy"):
        return [op]
    source, path = op.get("from"), op.get("path")
    if not isinstance(source, str) or not isinstance(path, str):
        raise jsonpatch.InvalidJsonPatch(f"{kind} needs from and path: {op}")
    value = copy.deepcopy(jsonpointer.resolve_pointer(document, source))
    if kind == "copy":
        return [{"op": "add", "path": path, "value": value}]
    if path == source:
        return []
    if path.startswith(source + "/"):
        raise jsonpatch.JsonPatchConflict("Cannot move values into their own children")
    return [{"op": "remove", "path": source}, {"op": "add", "path": path, "value": value}]


def apply_with_inverse(
    document: dict[str, Any], ops: list[dict[str, Any]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``document`` with the JSON Patch ``ops`` applied (a copy), and the patch that undoes
    it, computed operation by operation (no diff of whole documents: an edit of one field
    of a 300-step flow costs what that field costs). :class:`Invalid` naming the operation
    that cannot apply; nothing is changed then."""
    _refuse_id_change(ops)
    patched: Any = copy.deepcopy(document)
    undo: list[dict[str, Any]] = []
    for index, op in enumerate(ops):
        try:
            for part in _expanded(patched, op):
                undo[:0] = _inverse_of_op(patched, part)
                patched = jsonpatch.apply_patch(patched, [part], in_place=True)
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
            raise Invalid(
                f"the edit does not apply to the draft: operation {index}: {exc}",
                [{"location": f"ops[{index}]", "message": str(exc)}],
            ) from None
        except (TypeError, KeyError, ValueError, AttributeError) as exc:
            raise Invalid(
                f"the edit is not a JSON Patch: operation {index}: {exc}",
                [{"location": f"ops[{index}]", "message": str(exc)}],
            ) from None
    if not isinstance(patched, dict):
        raise Invalid("a flow document is an object", [{"location": "", "message": "object"}])
    return patched, undo


def _check_revision(row: dict[str, Any], revision: int | None) -> None:
    """Refuse an edit made on another revision of the draft (a second tab's)."""
    if revision is not None and row["revision"] != revision:
        raise Conflict(
            "the draft changed in another tab or window since this page loaded: reload to see it",
            code="draft_changed",
        )


def text_of(source: str, source_document: Any, document: dict[str, Any]) -> str:
    """The YAML text of ``document``: ``source`` (which reads as ``source_document``)
    patched with the difference, comments and key order kept; written anew when there is
    no text or it cannot be patched."""
    if source_document == document and source.strip():
        return source
    if source.strip() and isinstance(source_document, dict):
        try:
            ops = list(jsonpatch.make_patch(source_document, document).patch)
            return apply_patch_to_yaml(source, ops)
        except Exception:  # a text that no longer reads is written anew
            pass
    return dump_yaml(document)


class DraftsService(FlowsService):
    """The builder's drafts of the caller (editors): open, edit, undo, redo, save."""

    def _limits(self) -> DocumentLimits:
        return DocumentLimits.from_settings(self.hub.settings)

    def _bounded(self, document: dict[str, Any]) -> None:
        try:
            measure_value(document, self._limits())
        except BoundExceeded as exc:
            raise Invalid(
                exc.message, [{"location": exc.location, "message": exc.message}]
            ) from None

    async def draft(self, flow_id: str) -> Draft:
        """The caller's draft of a flow: the one kept, else a new one from the flow's
        latest version (:class:`NotFound` when there is neither)."""
        self.require("editor")
        ws, user = self.workspace, self.user_id

        def open_draft(conn: Any) -> Draft:
            row = draft_store.get_draft(conn, ws, flow_id, user)
            if row is not None:
                return Draft.of_row(row)
            flow = flow_store.get_flow(conn, ws, flow_id)
            if flow is None:
                raise NotFound(f"no flow {flow_id!r}")
            latest = flow["latest_version"]
            found = flow_store.get_version(conn, ws, flow_id, latest)
            if found is None:
                raise NotFound(f"flow {flow_id!r} has no version {latest}")
            document = dict(found["document"])
            source = found["source"] or ""
            if not source.strip() or source.lstrip().startswith("{"):
                source = dump_yaml(document)
            values = self._row(flow_id, document, source, latest, checksum(document))
            draft_store.put_draft(conn, values)
            return Draft.of_row(values)

        return await self.hub.db.write(open_draft)

    def _row(
        self,
        flow_id: str,
        document: dict[str, Any],
        source: str,
        base_version: int | None,
        saved: str,
    ) -> dict[str, Any]:
        return {
            "workspace_id": self.workspace,
            "flow_id": flow_id,
            "user_id": self.user_id,
            "base_version": base_version,
            "document": document,
            "source": source,
            "source_document": document,
            "undo": [],
            "redo": [],
            "pins": {},
            "sample": None,
            "saved_checksum": saved,
            "revision": 0,
        }

    async def start_draft(self, document: dict[str, Any]) -> Draft:
        """A draft of a new flow (:class:`Conflict` when a flow or a draft of the caller
        has its id already)."""
        self.require("editor")
        self._bounded(document)
        flow_id = str(document["id"])
        ws, user = self.workspace, self.user_id

        def start(conn: Any) -> Draft:
            if flow_store.get_flow(conn, ws, flow_id) is not None:
                raise Conflict(f"a flow {flow_id!r} exists already")
            if draft_store.get_draft(conn, ws, flow_id, user) is not None:
                raise Conflict(f"you have a draft of a flow {flow_id!r} already")
            values = self._row(flow_id, document, dump_yaml(document), None, "")
            draft_store.put_draft(conn, values)
            return Draft.of_row(values)

        return await self.hub.db.write(start)

    async def _change(self, flow_id: str, change: Any) -> Draft:
        """Run ``change(row)`` on the caller's draft row (locked) and write what it
        returns; :class:`NotFound` when there is no draft."""
        self.require("editor")
        ws, user = self.workspace, self.user_id

        def write(conn: Any) -> Draft:
            row = draft_store.get_draft(conn, ws, flow_id, user, for_update=True)
            if row is None:
                raise NotFound(f"no draft of flow {flow_id!r}: open it in the builder first")
            values = change(row)
            # The revision counts changes of the document (a text brought up to date, a pin
            # or a save leaves a tab's edits valid).
            changed = values["document"] != row["document"]
            values["revision"] = row["revision"] + (1 if changed else 0)
            draft_store.put_draft(conn, values)
            return Draft.of_row(values)

        return await self.hub.db.write(write)

    async def edit_draft(
        self,
        flow_id: str,
        ops: list[dict[str, Any]],
        *,
        label: str = "edit",
        revision: int | None = None,
    ) -> Draft:
        """Apply one edit (a JSON Patch) to the draft and remember it for undo (the redo
        stack is dropped). ``revision``: the draft's revision the edit was made on; when
        the draft changed since (another tab), :class:`Conflict`. An edit that changes
        nothing is not remembered."""

        def change(row: dict[str, Any]) -> dict[str, Any]:
            _check_revision(row, revision)
            before = row["document"]
            after, inverse = apply_with_inverse(before, ops)
            if after == before:
                return row
            self._bounded(after)
            now = time.time()
            entry = {"label": label[:200], "ops": ops, "inverse": inverse, "at": now}
            undo = list(row["undo"] or [])
            last = undo[-1] if undo else None
            if (
                last is not None
                and not row["redo"]
                and last.get("label") == entry["label"]
                and now - float(last.get("at", 0)) < COALESCE_SECONDS
            ):
                # Typing in one field: one undo entry for the burst, not one a keystroke.
                entry["ops"] = [*last["ops"], *ops]
                entry["inverse"] = [*inverse, *last["inverse"]]
                undo[-1] = entry
            else:
                undo = [*undo, entry][-MAX_UNDO:]
            return {**row, "document": after, "undo": undo, "redo": []}

        return await self._change(flow_id, change)

    async def undo_draft(self, flow_id: str) -> Draft:
        """Take back the last edit (nothing when there is none)."""

        def change(row: dict[str, Any]) -> dict[str, Any]:
            undo = list(row["undo"] or [])
            if not undo:
                return row
            entry = undo.pop()
            after, _ = apply_with_inverse(row["document"], entry["inverse"])
            redo = [*(row["redo"] or []), entry]
            return {**row, "document": after, "undo": undo, "redo": redo}

        return await self._change(flow_id, change)

    async def redo_draft(self, flow_id: str) -> Draft:
        """Make again the last edit taken back (nothing when there is none)."""

        def change(row: dict[str, Any]) -> dict[str, Any]:
            redo = list(row["redo"] or [])
            if not redo:
                return row
            entry = redo.pop()
            after, _ = apply_with_inverse(row["document"], entry["ops"])
            undo = [*(row["undo"] or []), entry][-MAX_UNDO:]
            return {**row, "document": after, "undo": undo, "redo": redo}

        return await self._change(flow_id, change)

    async def replace_draft_text(
        self, flow_id: str, text: str, *, revision: int | None = None
    ) -> Draft:
        """The YAML tab's text becomes the draft: read with the hub's bounded reader
        (:class:`Invalid` with the line of a YAML error, the draft unchanged), kept as
        typed, and remembered for undo as the patch from the document before.
        ``revision`` as for :meth:`edit_draft` (checked in the same transaction)."""
        try:
            document = read_yaml(text, self._limits())
        except TextError as exc:
            raise Invalid(str(exc), [{"location": exc.location, "message": exc.message}]) from None
        if not isinstance(document, dict):
            raise Invalid(
                "a flow document is a mapping (id, name, trigger, steps)",
                [{"location": "", "message": "must be a mapping"}],
            )
        if document.get("id") != flow_id:
            raise Invalid(
                f"the id must stay {flow_id!r} (the draft is that flow's)",
                [{"location": "id", "message": f"must be {flow_id!r}"}],
            )

        def change(row: dict[str, Any]) -> dict[str, Any]:
            _check_revision(row, revision)
            before = row["document"]
            typed = {**row, "source": text, "source_document": document}
            ops = list(jsonpatch.make_patch(before, document).patch)
            if not ops:
                return typed
            _, inverse = apply_with_inverse(before, ops)
            entry = {"label": "YAML edit", "ops": ops, "inverse": inverse}
            undo = [*(row["undo"] or []), entry][-MAX_UNDO:]
            return {**typed, "document": document, "undo": undo, "redo": []}

        return await self._change(flow_id, change)

    async def draft_text(self, flow_id: str) -> str:
        """The draft's YAML text, brought up to date with its document (comments and key
        order of the text kept: :func:`text_of`) and kept so. Edits do not rewrite the text
        (a round trip of a 300-step document takes a second): this does, when the text is
        shown or saved."""
        draft = await self.draft(flow_id)
        if draft.text_is_current:
            return draft.source
        text = await self._text_now(draft)
        await self._change(flow_id, self._keep_text(draft.document, text))
        return text

    @staticmethod
    async def _text_now(draft: Draft) -> str:
        """The draft's text patched to its document, in a worker thread (ruamel.yaml's round
        trip of a large document takes a second: never on the event loop)."""
        if draft.text_is_current:
            return draft.source
        return await anyio.to_thread.run_sync(
            text_of, draft.source, draft.source_document, draft.document, limiter=document_limiter()
        )

    @staticmethod
    def _keep_text(document: dict[str, Any], text: str) -> Any:
        """The change that keeps ``text`` as the draft's, unless the draft was edited since
        (then the text waits for the next time it is shown)."""

        def change(row: dict[str, Any]) -> dict[str, Any]:
            if row["document"] != document:
                return row
            return {**row, "source": text, "source_document": document}

        return change

    async def discard_draft(self, flow_id: str) -> bool:
        """Drop the caller's draft (the saved versions stay); False when there was none."""
        self.require("editor")
        ws, user = self.workspace, self.user_id
        return await self.hub.db.write(lambda c: draft_store.delete_draft(c, ws, flow_id, user))

    async def pin_output(self, flow_id: str, step_id: str, output: Any) -> Draft:
        """Pin a step's output in the draft (tried runs use it instead of calling the
        step); it is bounded like a document."""
        self._bounded({"pin": output})

        def change(row: dict[str, Any]) -> dict[str, Any]:
            pins = {**(row["pins"] or {}), step_id: copy.deepcopy(output)}
            self._bounded({"pins": pins})
            return {**row, "pins": pins}

        return await self._change(flow_id, change)

    async def unpin_output(self, flow_id: str, step_id: str) -> Draft:
        """Remove a step's pinned output."""

        def change(row: dict[str, Any]) -> dict[str, Any]:
            pins = {k: v for k, v in (row["pins"] or {}).items() if k != step_id}
            return {**row, "pins": pins}

        return await self._change(flow_id, change)

    async def set_sample(self, flow_id: str, sample: Any) -> Draft:
        """The trigger's sample data the builder tries steps with (None: none)."""
        self._bounded({"sample": sample})
        return await self._change(flow_id, lambda row: {**row, "sample": sample})

    async def save_draft(
        self, flow_id: str, *, message: str = "", publish: bool = False
    ) -> SavedVersion:
        """Save the draft as a new version, with the version it started from: validated
        like any save (:class:`~hub.flows.FlowError`), refused with the diff when another
        version was saved since (:class:`Conflict`, code ``version_conflict``)."""
        draft = await self.draft(flow_id)
        source = await self._text_now(draft)
        saved = await self.save_flow(
            draft.document,
            source=source,
            message=message,
            publish=publish,
            must_exist=not draft.is_new,
            base_version=draft.base_version,
            # A flow built in the builder starts with its trigger off: publishing and
            # enabling are explicit steps there.
            enabled=not draft.is_new,
        )
        digest = checksum(draft.document)
        keep_text = self._keep_text(draft.document, source)

        def saved_as(row: dict[str, Any]) -> dict[str, Any]:
            return {**keep_text(row), "base_version": saved.version, "saved_checksum": digest}

        await self._change(flow_id, saved_as)
        return saved
