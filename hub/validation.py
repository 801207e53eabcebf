"""From a failed model validation to the hub's `invalid` error, one shape everywhere.

Each broken rule becomes a problem `{"field", "rule", "message"}`: the field as a path
(`announcement.message`, `tags[2]`), the rule by the name the seeds give it (`required`,
`range`, `type`, `choice`, `min_items`, `max_items`, ... or a model's own, such as
`workshop_minimum`), and a message for people. Every problem is listed, in field order.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ModelWrapValidatorHandler, ValidationError, model_validator
from pydantic_core import ErrorDetails

from .errors import Invalid

Problem = dict[str, str]
M = TypeVar("M", bound=BaseModel)

# pydantic's error type -> (rule, message); `{name}` is filled from the error's context.
_RULES: dict[str, tuple[str, str]] = {
    "missing": ("required", "is required"),
    "string_type": ("type", "must be a string"),
    "int_type": ("type", "must be a whole number"),
    "int_from_float": ("type", "must be a whole number"),
    "float_type": ("type", "must be a number"),
    "bool_type": ("type", "must be true or false"),
    "list_type": ("type", "must be a list"),
    "dict_type": ("type", "must be a JSON object"),
    "model_type": ("type", "must be a JSON object"),
    "model_attributes_type": ("type", "must be a JSON object"),
    "datetime_type": ("type", "must be an ISO-8601 date-time with a time zone"),
    "finite_number": ("range", "must be a finite number"),
    "greater_than_equal": ("range", "must be at least {ge}"),
    "less_than_equal": ("range", "must be at most {le}"),
    "greater_than": ("range", "must be more than {gt}"),
    "less_than": ("range", "must be less than {lt}"),
    "string_too_short": ("min_length", "must be at least {min_length} characters long"),
    "string_too_long": ("max_length", "must be at most {max_length} characters"),
    "too_short": ("min_items", "must hold at least {min_length} items"),
    "too_long": ("max_items", "must hold at most {max_length} items"),
    "literal_error": ("choice", "must be one of {expected}"),
    "enum": ("choice", "must be one of {expected}"),
    "string_pattern_mismatch": ("pattern", "does not have the expected form"),
    "extra_forbidden": ("unknown_field", "is not a field of this request"),
}


def _number(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def field_path(loc: tuple[int | str, ...], prefix: str = "") -> str:
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path


def problem(error: ErrorDetails, prefix: str = "", root: str = "body") -> Problem:
    kind, ctx = error["type"], error.get("ctx") or {}
    loc = error["loc"]
    if not loc and "field" in ctx:  # a model's own rule names its field in the context
        loc = (str(ctx["field"]),)
    field = field_path(loc, prefix) or prefix or root
    if kind in _RULES:
        rule, template = _RULES[kind]
        if kind in ("string_too_short", "too_short") and ctx.get("min_length") == 1:
            template = "must not be empty"
        message = template.format(**{k: _number(v) for k, v in ctx.items()})
        if rule == "type" and error.get("input", ...) is None:
            rule, message = "required", "is required"
    else:  # a rule of our own, raised as PydanticCustomError(rule, message)
        rule, message = kind, error["msg"]
    return {"field": field, "rule": rule, "message": message}


def problems(exc: ValidationError, prefix: str = "", root: str = "body") -> list[Problem]:
    return [problem(error, prefix, root) for error in exc.errors(include_url=False)]


def invalid(found: list[Problem], message: str | None = None) -> Invalid:
    """The `invalid` error naming every problem; the first one also at the top level."""
    first = found[0]
    details = {"field": first["field"], "rule": first["rule"], "errors": found}
    return Invalid(message or f"{first['field']}: {first['message']}", details)


def parse(model: type[M], data: Any, prefix: str = "") -> M:
    """`data` as `model`, or Invalid naming every broken rule."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid(problems(exc, prefix)) from None


def check(validator: Any, data: Any, root: str = "body") -> list[Problem]:
    """The problems of `data` (none when it is valid), for hot paths that keep `data`:
    `validator` is a model's or a TypeAdapter's compiled validator."""
    try:
        validator.validate_python(data)
    except ValidationError as exc:
        return problems(exc, root=root)
    return []


WORKSHOP_MINIMUM = 5


def required_for_live(field: str, session_type: Any, lead: Any) -> list[Problem]:
    """Seed 003: a live session names its instructor."""
    if session_type == "live" and not (isinstance(lead, str) and lead.strip()):
        return [{"field": field, "rule": "required_for_live", "message": "is required for live sessions"}]
    return []


def workshop_minimum(field: str, session_type: Any, count: Any) -> list[Problem]:
    """Seed 003: a workshop has at least `WORKSHOP_MINIMUM` participants."""
    if session_type == "workshop" and type(count) is int and count < WORKSHOP_MINIMUM:
        message = f"must be at least {WORKSHOP_MINIMUM} for workshops"
        return [{"field": field, "rule": "workshop_minimum", "message": message}]
    return []


class Conditional(BaseModel):
    """A model with rules across fields (seed 003's conditional rules: instructor required
    for live sessions, at least 5 participants for workshops). They read the raw data, so
    they are reported together with every other broken rule, not only once the rest is
    valid."""

    @classmethod
    def conditions(cls, data: dict[str, Any]) -> list[Problem]:
        return []

    @model_validator(mode="wrap")
    @classmethod
    def _check_conditions(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        found = cls.conditions(data) if isinstance(data, dict) else []
        try:
            model = handler(data)
        except ValidationError as exc:
            if found:  # not a ValidationError: pydantic lets it through as it is
                raise invalid(problems(exc) + found) from None
            raise
        if found:
            raise invalid(found)
        return model
