"""The hub's one JSON-Schema form renderer: a schema and a value become an accessible HTML
form (server-side, Jinja2 templates under ``ui/templates/forms/``), and the submitted form
(``application/x-www-form-urlencoded``, multi-valued) becomes the JSON value again.

Connections use it for their connector's connection schema (the flow builder, when it
lands, is meant to reuse it for an action's input schema). :class:`FormHooks` extends it: a
field's ``widget`` is the template that draws it, ``forms/widgets/<widget>.html``, so a
hook, a plugin or a deployment's templates add or replace widgets.

**Field names** encode the JSON path: the root is ``v``; an object's property adds
``.<name>`` (the name with every character other than ``A-Z a-z 0-9 _`` percent-encoded as
UTF-8, and a leading ``__`` written ``%5F_``, so that no property clashes with a marker); an
array's item adds ``.<row>``. Markers (hidden inputs, never a property) start and end with
``__``:

- ``P.__row__``: one per row of the array at ``P``, its value the row's number; rows are
  read in the order of these markers (so rows may be numbered with gaps);
- ``P.__kv__``, ``P.__key__.<row>``, ``P.__value__.<row>``: a row of an object's
  ``additionalProperties`` (its key, and its value at ``P.__value__.<row>``);
- ``P.__choice__``: the chosen alternative of a ``oneOf``/``anyOf``;
- ``P.__set__``: an array of enum values shown as checkboxes (``uniqueItems``) was in the
  form (so "none ticked" differs from "not in the form");
- ``P.__clear__``: the person asked to remove a stored secret;
- a boolean is a hidden ``P=`` (empty) followed by the checkbox ``P=true``: the field was
  in the form when either arrives, and it is true when ``true`` does.

The submit buttons that add and remove rows post ``_form_op``: ``add:<name of the array or
object>``, ``remove:<name of the row>``, or ``refresh`` (show another alternative's fields):
the page re-renders the form from what was submitted without saving (no JavaScript needed;
htmx swaps the form in place when it has loaded). Field ids are ``f-`` and the name with
``.`` written ``-`` and ``%`` written ``:`` (unique, stable, derived from the path).

**Controls.** strings: a text input (``format`` ``email``, ``uri``, ``date``: the matching
input type; ``date-time``: text with an example); a textarea when the schema says
``format: textarea`` or ``x-multiline: true``, when ``maxLength`` is over
:data:`MULTILINE_LENGTH`, or when the value holds a line break. Numbers and integers: a number
input with ``min``/``max``/``step`` (exclusive bounds and ``multipleOf`` said in the hint),
read from text with an error naming the field. Booleans: a checkbox. Enums (``enum``, titled
by ``x-enumNames``; or a ``oneOf``/``anyOf`` of ``const`` alternatives titled by their
``title``): a select. Arrays: rows with Add and Remove buttons; an array of enum values with
``uniqueItems``: checkboxes. Objects: a fieldset with a legend; ``additionalProperties``:
key-value rows. ``oneOf``/``anyOf``: a select of the alternatives and the chosen one's
fields. Anything else (no type, several types, an object without properties, tuples): a
JSON textarea. ``$ref`` (local: ``#/$defs/...``, ``#/definitions/...``) and ``allOf`` are
resolved. Secret fields (``writeOnly: true`` or ``format: password``, any type): password
inputs never filled with a value; left empty they mean "keep the stored secret"
(:attr:`Submission.kept`).

**What an empty field means.** An optional field left empty (text, number, enum, JSON, an
array or key-value list without rows, an object with nothing filled in) is left out of the
value; a required one gives ``""`` for a string (and an error for the others). A checkbox
always gives ``true`` or ``false`` once it was in the form. Defaults prefill a new form
(``fresh=True``) only: editing shows what is stored. Strings lose carriage returns (browsers
send line breaks as CRLF; the parser reads them as LF) and a single-line input never holds a
line break (a value with one is shown in a textarea).

**Bounds.** A schema nested deeper than ``max_document_depth`` (``$ref`` recursion
included), a form of more than :class:`FormLimits` ``max_fields`` fields, or a submission
of more rows or pairs than that is refused with :class:`FormTooLarge`.
"""

from hub.web.forms.parse import (
    Submission,
    apply_op,
    blank,
    form_data,
    parse_form,
    plain,
    validation_errors,
    value_at,
)
from hub.web.forms.render import NO_HOOKS, Field, Form, FormHooks, Option, render_form
from hub.web.forms.schema import (
    MISSING,
    OP_FIELD,
    ROOT,
    Choice,
    FormLimits,
    FormSchemaError,
    FormTooLarge,
    Path,
    Raw,
    field_id,
    kind_of,
    name_of,
    resolve,
    segment,
)

__all__ = [
    "MISSING",
    "NO_HOOKS",
    "OP_FIELD",
    "ROOT",
    "Choice",
    "Field",
    "Form",
    "FormHooks",
    "FormLimits",
    "FormSchemaError",
    "FormTooLarge",
    "Option",
    "Path",
    "Raw",
    "Submission",
    "apply_op",
    "blank",
    "field_id",
    "form_data",
    "kind_of",
    "name_of",
    "parse_form",
    "plain",
    "render_form",
    "resolve",
    "segment",
    "validation_errors",
    "value_at",
]
